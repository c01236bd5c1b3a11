-- The seed flow's books (PROTOCOL.md Part 3): invoices handed out, prepaid accounts, holds,
-- payments made inside the books, deposits, withdrawals, and the append-only journal. Amounts
-- are msat; times are Unix seconds; networks are x402 v1 names (`lightning-regtest`).

-- Every invoice of POST /requirements: only these are payable by /verify and /settle.
CREATE TABLE IF NOT EXISTS invoices (
    payment_hash TEXT PRIMARY KEY,
    network      TEXT NOT NULL,
    invoice      TEXT NOT NULL,
    amount_msat  BIGINT NOT NULL CHECK (amount_msat > 0),
    expires_at   BIGINT NOT NULL,
    resource     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS invoices_expires_at ON invoices (expires_at);

-- One account per (network, public key): balances on different networks never mix.
CREATE TABLE IF NOT EXISTS accounts (
    network      TEXT NOT NULL,
    account      TEXT NOT NULL,
    balance_msat BIGINT NOT NULL CHECK (balance_msat >= 0),
    held_msat    BIGINT NOT NULL CHECK (held_msat >= 0 AND held_msat <= balance_msat),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (network, account)
);

-- A verified seed-flow payment's reservation, until its settle, its invoice's payment by
-- anyone (its replay key recorded), or its expiry.
CREATE TABLE IF NOT EXISTS holds (
    payment_hash TEXT NOT NULL,
    network      TEXT NOT NULL,
    account      TEXT NOT NULL,
    replay_key   TEXT NOT NULL,
    amount_msat  BIGINT NOT NULL CHECK (amount_msat > 0),
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (payment_hash, network, account)
);
CREATE INDEX IF NOT EXISTS holds_account ON holds (network, account, expires_at);

-- Seed-flow settles: an invoice of the node paid inside the books, with its preimage.
CREATE TABLE IF NOT EXISTS payments (
    payment_hash TEXT PRIMARY KEY,
    network      TEXT NOT NULL,
    payer        TEXT NOT NULL,
    amount_msat  BIGINT NOT NULL,
    preimage     TEXT NOT NULL,
    settled_at   BIGINT NOT NULL
);

-- Deposit invoices: credited exactly once (state pending -> credited).
CREATE TABLE IF NOT EXISTS deposits (
    payment_hash TEXT PRIMARY KEY,
    network      TEXT NOT NULL,
    network_id   TEXT NOT NULL,
    account      TEXT NOT NULL,
    amount_msat  BIGINT NOT NULL CHECK (amount_msat > 0),
    invoice      TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'credited')),
    created_at   BIGINT NOT NULL,
    credited_at  BIGINT,
    -- When the background check last asked the node (it asks the least recently checked first).
    checked_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS deposits_pending ON deposits (state, network, account);
CREATE INDEX IF NOT EXISTS deposits_checked ON deposits (state, checked_at);

-- Payouts over Lightning: pending -> succeeded | failed (a failed one may start again).
CREATE TABLE IF NOT EXISTS withdrawals (
    payment_hash TEXT PRIMARY KEY,
    network      TEXT NOT NULL,
    account      TEXT NOT NULL,
    invoice      TEXT NOT NULL,
    amount_msat  BIGINT NOT NULL CHECK (amount_msat > 0),
    max_fee_msat BIGINT NOT NULL CHECK (max_fee_msat >= 0),
    held_msat    BIGINT NOT NULL CHECK (held_msat >= 0),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    fee_msat     BIGINT NOT NULL DEFAULT 0,
    preimage     TEXT,
    reason       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS withdrawals_state ON withdrawals (state);

-- Append-only: one row per credit, debit, hold and release. For every account,
-- balance = credits - debits and held = holds - releases.
CREATE TABLE IF NOT EXISTS journal (
    network      TEXT NOT NULL,
    account      TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('credit', 'debit', 'hold', 'release')),
    amount_msat  BIGINT NOT NULL CHECK (amount_msat >= 0),
    payment_hash TEXT NOT NULL,
    memo         TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_account ON journal (network, account);
