-- Issue 10.2 (interlock.identity): each token row is bound to the token.created entry written in the same
-- transaction (it records the secret's lookup hash). A token row without that entry — written into the
-- database directly — does not authenticate, and `audit verify` names it.
ALTER TABLE tokens ADD COLUMN entry_idx BIGINT;
