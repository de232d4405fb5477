-- Issue 16.3 (interlock.rollout): a rollout's one approval is an ordinary approval request, listed,
-- voted on and notified like any other. `rollout_id` names the rollout; `rollout_json` holds what its
-- approvers see (targets and their decisions, steps, checks, rollback, deadline), as recorded in the
-- request's `approval.requested` entry, which the row is checked against before a vote counts.
ALTER TABLE approval_requests ADD COLUMN rollout_id TEXT;
ALTER TABLE approval_requests ADD COLUMN rollout_json TEXT;
