//! Wire types of the facilitator service's prepaid accounts: deposits, the signed account read
//! and withdrawals. Amounts are msat, decimal strings on the wire; network ids are kept as
//! written (either form: `lightning-regtest` or `lnbtc:…`), since answers echo the request's
//! form.

use serde::{Deserialize, Serialize};

use crate::v1::types::msat_string;

/// `POST /accounts/deposits`: ask for an invoice that credits `account` once paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositRequest {
    /// The network, either id form.
    pub network: String,
    /// The account credited: a compressed public key, 66 lowercase hex.
    pub account: String,
    /// The amount, msat.
    #[serde(with = "msat_string")]
    pub amount: u64,
}

/// The answer to a deposit request (201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepositInvoice {
    /// The network, as the request wrote it.
    pub network: String,
    /// The account credited.
    pub account: String,
    /// The amount, msat.
    #[serde(with = "msat_string")]
    pub amount: u64,
    /// The node's BOLT11 invoice to pay (`d` = `deposit to <account>`).
    pub invoice: String,
    /// Its payment hash, 64 lowercase hex.
    pub payment_hash: String,
    /// When it expires, Unix seconds.
    pub expires_at: u64,
}

/// Where a deposit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DepositState {
    /// Not paid yet.
    Pending,
    /// Paid and credited to the account (exactly once).
    Credited,
    /// Expired unpaid.
    Expired,
}

/// `GET /accounts/deposits/{paymentHash}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepositStatus {
    /// The network, as the deposit request wrote it.
    pub network: String,
    /// The account credited.
    pub account: String,
    /// The amount, msat.
    #[serde(with = "msat_string")]
    pub amount: u64,
    /// The invoice's payment hash.
    pub payment_hash: String,
    /// Where it stands.
    pub state: DepositState,
}

/// `GET /accounts/{network}/{account}` (signed read): msat strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBalance {
    /// The network, as the path wrote it.
    pub network: String,
    /// The account.
    pub account: String,
    /// Credits minus debits, msat.
    #[serde(with = "msat_string")]
    pub balance: u64,
    /// Reserved by holds (verified payments not yet settled, withdrawals in flight), msat.
    #[serde(with = "msat_string")]
    pub held: u64,
    /// `balance − held`: what a new payment may spend, msat.
    #[serde(with = "msat_string")]
    pub available: u64,
}

/// `POST /accounts/withdrawals`: pay an invoice of another node from the account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WithdrawalRequest {
    /// The network, either id form.
    pub network: String,
    /// The account paying.
    pub account: String,
    /// The BOLT11 invoice to pay (with an amount).
    pub invoice: String,
    /// The most the routing may cost, msat.
    #[serde(with = "msat_string")]
    pub max_fee_msat: u64,
    /// The account's signature of `x402-lightning withdrawal <invoice> <maxFeeMsat>`
    /// ([`crate::v1::sign::withdrawal_message`]).
    pub signature: String,
}

/// Where a withdrawal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WithdrawalState {
    /// The node has not decided yet (answered 202).
    Pending,
    /// Paid: the account was debited the amount and the fee actually paid.
    Succeeded,
    /// Failed: nothing was debited; the invoice may be tried again.
    Failed,
}

/// The answer to a withdrawal, and `GET /accounts/{network}/{account}/withdrawals/{hash}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Withdrawal {
    /// The invoice's payment hash.
    pub payment_hash: String,
    /// Where it stands.
    pub state: WithdrawalState,
    /// The invoice's amount, msat.
    #[serde(with = "msat_string")]
    pub amount: u64,
    /// The routing fee paid, msat (`"0"` unless succeeded).
    #[serde(with = "msat_string")]
    pub fee_msat: u64,
    /// The preimage, once succeeded: the proof of payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preimage: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
