-- The webhook outbox (interlock.gate.outbox): one row per delivery still to send, written in the same
-- transaction as the change or audit entry that causes it, sent by the one holder of the
-- `webhook-delivery` lease, deleted once sent or given up (`webhook.failed`). A row names the policy's
-- webhook (`notify[].name`, or a digest of its URL), never its URL or secret: both are resolved at
-- send time. `body` is the signed document without its `timestamp` (set at each attempt).
CREATE TABLE IF NOT EXISTS webhook_outbox (
    delivery   TEXT PRIMARY KEY,
    webhook    TEXT NOT NULL,
    event      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    due_at     TEXT NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox(due_at);
