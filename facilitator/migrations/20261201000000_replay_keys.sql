-- One row per settled proof: the canonical consumption key `network:payment_hash` (upstream
-- "Settlement and Replay Protection"). The primary key makes the insert atomic across instances.
CREATE TABLE IF NOT EXISTS replay_keys (
    replay_key   TEXT PRIMARY KEY,
    -- Unix seconds until which the key must be kept: invoice_end + skew + 1 h.
    retain_until BIGINT NOT NULL,
    -- Unix seconds of the settle, for operators.
    settled_at   BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS replay_keys_retain_until ON replay_keys (retain_until);
