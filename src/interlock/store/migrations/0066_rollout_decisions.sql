-- Issue 16 (interlock.rollout): the policy's decisions on every member's forward and rollback action, most of
-- a rollout's state and fixed at submission, are written once, here, instead of with `state_json` at every
-- write of the runner's (two per target). A row from before keeps them in state_json (this column NULL) and
-- is read and written as it was.
ALTER TABLE rollouts ADD COLUMN decisions_json TEXT;
