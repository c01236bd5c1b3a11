//! The books of the seed flow (`PROTOCOL.md` Part 3): invoices handed out (by `/requirements`,
//! whatever the flows served: `GET /invoices` reports only these), prepaid accounts, holds,
//! payments made inside the books, deposits and withdrawals, and the journal.
//!
//! The rules of money, as an accountant states them:
//!
//! - an **account** is a public key on one network; it exists from its first **credit** (a paid
//!   deposit); its **balance** is credits − debits and never negative;
//! - a **hold** reserves part of the balance for one payment (a verified seed-flow payment, a
//!   withdrawal in flight); **available** = balance − held;
//! - a seed-flow settle **debits** the amount (consuming its hold); a withdrawal **debits** the
//!   amount and the fee actually paid, and **releases** the rest of its hold;
//! - every change of a balance or a hold is one database transaction that also appends its
//!   **journal** row (credit, debit, hold, release), so `balance = Σ credits − Σ debits` and
//!   `held = Σ holds − Σ releases` for every account, always ([`Books::audit`]).
//!
//! HTTP handlers translate requests into these calls; they never compute a balance. [`Books`]
//! is implemented by both stores ([`crate::store::SqliteStore`], [`crate::store::PostgresStore`])
//! with the same SQL; concurrency is the database's: every operation on an account first
//! locks its row, and the replay key shared with the `lnbtc` flow is inserted in the same
//! transaction as the debit.

use x402_lightning::Network;

use crate::store::StoreFuture;

/// The largest balance an account may hold, msat: 21 million bitcoin. A deposit that would
/// pass it is not credited (it stays pending, and the error is logged).
pub const MAX_BALANCE_MSAT: u64 = 2_100_000_000_000_000_000;

/// An account: a compressed public key (66 lowercase hex) on one network.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountId {
    /// The network (stored under its x402 v1 name).
    pub network: Network,
    /// The public key, 66 lowercase hex.
    pub account: String,
}

/// An account's balance, msat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Credits − debits.
    pub balance_msat: u64,
    /// Reserved by holds.
    pub held_msat: u64,
}

impl Balance {
    /// `balance − held`: what a new payment may spend.
    pub fn available_msat(&self) -> u64 {
        self.balance_msat.saturating_sub(self.held_msat)
    }
}

/// An invoice handed out by `POST /requirements`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceRecord {
    /// 64 lowercase hex.
    pub payment_hash: String,
    /// The invoice's network.
    pub network: Network,
    /// The BOLT11 text.
    pub invoice: String,
    /// msat.
    pub amount_msat: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// The resource it pays for.
    pub resource: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// A hold to place for a verified payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRequest {
    /// Whose balance.
    pub account: AccountId,
    /// The invoice's payment hash, 64 lowercase hex.
    pub payment_hash: String,
    /// The replay key shared with the `lnbtc` flow (already paid: no hold).
    pub replay_key: String,
    /// msat.
    pub amount_msat: u64,
    /// Unix seconds: the invoice's expiry plus the skew.
    pub expires_at: u64,
}

/// A seed-flow payment to make inside the books.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRequest {
    /// Who pays.
    pub account: AccountId,
    /// The invoice's payment hash, 64 lowercase hex.
    pub payment_hash: String,
    /// The replay key shared with the `lnbtc` flow.
    pub replay_key: String,
    /// How long the replay key is kept, Unix seconds.
    pub retain_until: u64,
    /// msat.
    pub amount_msat: u64,
    /// The invoice's preimage, 64 lowercase hex (from the node).
    pub preimage: String,
}

/// What placing a hold or paying did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Held (or the account's hold for this payment hash already was), or paid.
    Done,
    /// The invoice is already paid, by either flow: `duplicate_settlement`.
    AlreadyPaid,
    /// The available balance does not cover it (an account that does not exist has none):
    /// `insufficient_funds`.
    InsufficientFunds,
}

/// Where a deposit stands in the books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepositState {
    /// Not credited yet.
    Pending,
    /// Credited, once.
    Credited,
}

/// A deposit invoice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositRecord {
    /// 64 lowercase hex.
    pub payment_hash: String,
    /// The account credited.
    pub account: AccountId,
    /// The network id as the deposit request wrote it (answers echo it).
    pub network_id: String,
    /// msat.
    pub amount_msat: u64,
    /// The node's invoice.
    pub invoice: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// Where it stands.
    pub state: DepositState,
}

/// Where a withdrawal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithdrawalState {
    /// Paying: its hold is on the account.
    Pending,
    /// Paid: amount + fee debited.
    Succeeded,
    /// Failed: the hold released, nothing debited.
    Failed,
}

impl WithdrawalState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A withdrawal: an invoice of another node paid from an account.
#[derive(Clone, PartialEq, Eq)]
pub struct WithdrawalRecord {
    /// The invoice's payment hash, 64 lowercase hex.
    pub payment_hash: String,
    /// Who pays.
    pub account: AccountId,
    /// The invoice.
    pub invoice: String,
    /// msat.
    pub amount_msat: u64,
    /// The fee limit, msat.
    pub max_fee_msat: u64,
    /// Where it stands.
    pub state: WithdrawalState,
    /// The fee paid, msat (succeeded only).
    pub fee_msat: u64,
    /// The preimage, 64 lowercase hex (succeeded only).
    pub preimage: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
    /// When it last changed state, Unix seconds (set by the books).
    pub updated_at: u64,
}

impl std::fmt::Debug for WithdrawalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithdrawalRecord")
            .field("payment_hash", &self.payment_hash)
            .field("account", &self.account)
            .field("amount_msat", &self.amount_msat)
            .field("max_fee_msat", &self.max_fee_msat)
            .field("state", &self.state)
            .field("fee_msat", &self.fee_msat)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

/// What starting a withdrawal did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WithdrawalStart {
    /// Recorded as pending, amount + fee limit held: pay it now.
    Started,
    /// The invoice was already paid by a withdrawal: `duplicate_settlement`.
    AlreadyPaid,
    /// A withdrawal of this invoice is in flight: 409.
    InFlight,
    /// The available balance does not cover amount + fee limit: `insufficient_funds`.
    InsufficientFunds,
}

/// How a pending withdrawal ended.
#[derive(Clone, PartialEq, Eq)]
pub enum WithdrawalEnd {
    /// Paid, with this fee (msat) and preimage (64 lowercase hex).
    Succeeded {
        /// msat.
        fee_msat: u64,
        /// 64 lowercase hex.
        preimage: String,
    },
    /// Failed for good.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One account as the books and the journal see it: equal, always.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// The account.
    pub account: AccountId,
    /// The account row.
    pub balance: Balance,
    /// Σ credits − Σ debits of its journal.
    pub journal_balance_msat: i128,
    /// Σ holds − Σ releases of its journal.
    pub journal_held_msat: i128,
}

impl AuditRow {
    /// Whether the account agrees with its journal.
    pub fn adds_up(&self) -> bool {
        i128::from(self.balance.balance_msat) == self.journal_balance_msat
            && i128::from(self.balance.held_msat) == self.journal_held_msat
    }
}

/// The books in a database: every method that changes money is one transaction with its
/// journal rows. `now` is Unix seconds (expired holds are released when their account is next
/// touched).
pub trait Books: Send + Sync {
    /// Records an invoice handed out by `/requirements`.
    fn record_invoice<'a>(&'a self, invoice: &'a InvoiceRecord) -> StoreFuture<'a, ()>;

    /// The invoice recorded under `payment_hash`.
    fn recorded_invoice<'a>(
        &'a self,
        payment_hash: &'a str,
    ) -> StoreFuture<'a, Option<InvoiceRecord>>;

    /// Whether `replay_key` is recorded: the invoice was paid by either flow.
    fn is_paid<'a>(&'a self, replay_key: &'a str) -> StoreFuture<'a, bool>;

    /// Places the hold of a valid `/verify` (keeps the one hold of a second verify by the same
    /// account).
    fn hold<'a>(&'a self, hold: &'a HoldRequest, now: u64) -> StoreFuture<'a, Outcome>;

    /// Releases the account's hold for `payment_hash`, if any (a refused settle).
    fn release<'a>(
        &'a self,
        account: &'a AccountId,
        payment_hash: &'a str,
        now: u64,
    ) -> StoreFuture<'a, ()>;

    /// Pays inside the books: consumes the account's hold (or takes the amount), debits,
    /// inserts the replay key and records the payment, in one transaction.
    fn pay<'a>(&'a self, payment: &'a PaymentRequest, now: u64) -> StoreFuture<'a, Outcome>;

    /// The account's balance (releasing its expired holds first); `None` if it does not exist.
    fn balance<'a>(&'a self, account: &'a AccountId, now: u64) -> StoreFuture<'a, Option<Balance>>;

    /// Records a deposit invoice (pending), unless its account already has `max_pending`
    /// unexpired pending deposits: `false` then (anyone may deposit to any account, so a flood
    /// of unpaid ones must not grow without bound, nor hide a paid one from the account's
    /// reads).
    fn record_deposit<'a>(
        &'a self,
        deposit: &'a DepositRecord,
        now: u64,
        max_pending: u32,
    ) -> StoreFuture<'a, bool>;

    /// The deposit of `payment_hash`.
    fn deposit<'a>(&'a self, payment_hash: &'a str) -> StoreFuture<'a, Option<DepositRecord>>;

    /// Pending deposits expiring at `expiring_from` or later, at most `limit`: of one account
    /// (the newest first: the one just paid, not a flood of unpaid ones, is read), or of all
    /// accounts (the least recently [checked](Self::deposit_checked) first, so that every one
    /// is reached, however many there are).
    fn pending_deposits<'a>(
        &'a self,
        account: Option<&'a AccountId>,
        expiring_from: u64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<DepositRecord>>;

    /// Records that the node was asked about the deposit at `now`.
    fn deposit_checked<'a>(&'a self, payment_hash: &'a str, now: u64) -> StoreFuture<'a, ()>;

    /// Releases every hold on `payment_hash` (the invoice was paid, by any account or flow):
    /// each account in its own transaction.
    fn release_all<'a>(&'a self, payment_hash: &'a str, now: u64) -> StoreFuture<'a, ()>;

    /// Credits a paid deposit, exactly once: `true` if this call credited it.
    fn credit_deposit<'a>(&'a self, payment_hash: &'a str, now: u64) -> StoreFuture<'a, bool>;

    /// Starts a withdrawal (pending, amount + fee limit held), unless the invoice is paid or
    /// in flight, or the balance is short. A failed withdrawal of the invoice starts again.
    fn start_withdrawal<'a>(
        &'a self,
        withdrawal: &'a WithdrawalRecord,
        now: u64,
    ) -> StoreFuture<'a, WithdrawalStart>;

    /// Ends a pending withdrawal, once: releases its hold and, if it succeeded, debits amount +
    /// fee. Returns the record as it now stands (`None` if unknown).
    fn end_withdrawal<'a>(
        &'a self,
        payment_hash: &'a str,
        end: &'a WithdrawalEnd,
        now: u64,
    ) -> StoreFuture<'a, Option<WithdrawalRecord>>;

    /// The withdrawal of `payment_hash`.
    fn withdrawal<'a>(&'a self, payment_hash: &'a str)
    -> StoreFuture<'a, Option<WithdrawalRecord>>;

    /// Every pending withdrawal (resolved at start by asking the node).
    fn pending_withdrawals(&self) -> StoreFuture<'_, Vec<WithdrawalRecord>>;

    /// Every account next to its journal's sums.
    fn audit(&self) -> StoreFuture<'_, Vec<AuditRow>>;
}
