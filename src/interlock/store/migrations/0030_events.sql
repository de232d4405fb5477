-- Cross-process notifications (interlock.store.events): one generation counter per channel, bumped in
-- the same transaction as the change it announces, so a process that missed a notification (restart,
-- reconnect, or SQLite, which has none) sees that something changed by comparing generations.
CREATE TABLE IF NOT EXISTS event_generations (
    channel    TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    changed_at TEXT NOT NULL
);
