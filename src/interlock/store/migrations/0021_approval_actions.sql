-- Issue 10.10 (interlock.gate): the action that opened an approval request, so its votes and grants
-- are recorded with the action id and `audit show --action ID` shows who approved.
ALTER TABLE approval_requests ADD COLUMN action_id TEXT;
