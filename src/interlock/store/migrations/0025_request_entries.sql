-- Issue 10.2 (interlock.gate): each approval request is bound to the entry that recorded its terms
-- (approval.requested, or approval.repinned after a policy change), written in the same transaction.
-- The gate takes no vote on a request whose row disagrees with that entry (a lowered count, other
-- eligible humans), and `audit verify` names it.
ALTER TABLE approval_requests ADD COLUMN entry_idx BIGINT;
