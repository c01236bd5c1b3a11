//! What a paid request leaves behind: the [`Receipt`] (in the response's extensions), and the
//! errors of paying ([`PayError`]).

use std::fmt;

use serde::Serialize;

use super::budget::BudgetRefusal;
use super::offer::{Flow, Unpayable};
use super::wallet::WalletError;

/// A payment made for a request: found in the paid response's extensions
/// (`response.extensions().get::<Receipt>()`), and in the errors that follow a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The flow it went through.
    #[serde(serialize_with = "flow_str")]
    pub flow: Flow,
    /// The network, as the offer named it.
    pub network: String,
    /// The invoice amount paid, msat.
    pub amount_msat: u64,
    /// The routing fee paid, msat (0 in the seed flow: the facilitator pays from the account).
    pub fee_msat: u64,
    /// The invoice's payment hash, 64 lowercase hex.
    pub payment_hash: String,
    /// The URL paid for (the request's).
    pub url: String,
    /// The decoded `PAYMENT-RESPONSE` (lnbtc) or `X-PAYMENT-RESPONSE` (v1), when the server sent
    /// one.
    pub settlement: Option<Settlement>,
}

fn flow_str<S: serde::Serializer>(flow: &Flow, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(flow.as_str())
}

/// A server's settle outcome, from either flow's response header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settlement {
    /// Whether the payment was settled.
    pub success: bool,
    /// The payment hash (`""` on failure).
    pub transaction: String,
    /// The network, as the server wrote it.
    pub network: String,
    /// The payer the facilitator named (the seed flow's account).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// Why not, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
}

/// The proof a paid request carries: one header. Its value holds the preimage (lnbtc) or the
/// account's signed authorization (v1): it buys the request, so `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Proof {
    /// `payment-signature` or `x-payment`.
    pub header: &'static str,
    /// The header's value.
    pub value: String,
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proof")
            .field("header", &self.header)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// Why a request was not paid for, or not served after paying. Each says whether money may
/// have left: see [`PayError::may_have_paid`].
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// The 402 offers nothing this client can read or pay with what it holds, or its offer
    /// failed a check (binding, payee, amount, expiry, network). Nothing was paid.
    #[error("refusing to pay: {0}")]
    Unpayable(Unpayable),
    /// The offer is over a limit of the budget. Nothing was paid.
    #[error("over budget ({limit}): {0}", limit = .0.limit())]
    Budget(BudgetRefusal),
    /// The request's body is a stream: it cannot be sent again with the payment, so nothing was
    /// paid.
    #[error("the request's body is a stream and cannot be sent again with a payment")]
    BodyNotReplayable,
    /// Another request of this client is paying the same invoice right now. Nothing was paid
    /// by this one.
    #[error("this client is already paying invoice {payment_hash}")]
    AlreadyPaying {
        /// The invoice's payment hash.
        payment_hash: String,
    },
    /// The wallet failed the payment for good: nothing left it.
    #[error("the payment of {payment_hash} failed: {reason}")]
    PaymentFailed {
        /// The invoice's payment hash.
        payment_hash: String,
        /// The wallet's reason.
        reason: String,
    },
    /// The payment is in flight: it may still succeed. It is tracked, never paid again.
    #[error("the payment of {payment_hash} is in flight: not paid again; ask the wallet later")]
    InFlight {
        /// The invoice's payment hash.
        payment_hash: String,
    },
    /// The wallet call failed: the payment may or may not have been made. It is never paid
    /// again by this client.
    #[error(
        "the wallet failed while paying {payment_hash} (outcome unknown, not paid again): {source}"
    )]
    Wallet {
        /// The invoice's payment hash.
        payment_hash: String,
        /// The wallet's error.
        source: WalletError,
    },
    /// The proof was sent and the server refused it (e.g. `duplicate_settlement`, a settle
    /// that failed). Reported, never paid again; the budget counts it (see
    /// [`may_have_paid`](Self::may_have_paid)).
    #[error("the server refused the payment ({status}): {reason}")]
    Refused {
        /// The server's status (402, 400).
        status: u16,
        /// The server's reason.
        reason: String,
        /// The payment.
        receipt: Box<Receipt>,
    },
    /// Paid, but the paid request got no answer, after as many tries with the same proof as
    /// configured (each lost on the network, or answered 409: the payment being settled).
    /// Resend `proof` with the same request to get what was paid for.
    #[error("paid, but the paid request could not be delivered: {detail}")]
    Undelivered {
        /// Why the last try got no answer (a transport error, or 409).
        detail: String,
        /// The payment.
        receipt: Box<Receipt>,
        /// The proof to resend.
        proof: Proof,
    },
}

impl PayError {
    /// Whether money may have left the wallet or account: `false` when it certainly did not.
    ///
    /// A refused proof may have paid: the lnbtc payment was made before it was sent, and a
    /// seed-flow authorization can be settled by whoever received it, whatever they answer.
    pub fn may_have_paid(&self) -> bool {
        matches!(
            self,
            Self::InFlight { .. }
                | Self::Wallet { .. }
                | Self::Undelivered { .. }
                | Self::Refused { .. }
        )
    }

    /// The receipt, for errors that follow a payment.
    pub fn receipt(&self) -> Option<&Receipt> {
        match self {
            Self::Refused { receipt, .. } | Self::Undelivered { receipt, .. } => Some(receipt),
            _ => None,
        }
    }

    /// The `PayError` inside a [`reqwest_middleware::Error`], if the payer raised it.
    pub fn from_middleware(err: &reqwest_middleware::Error) -> Option<&Self> {
        match err {
            reqwest_middleware::Error::Middleware(err) => err.downcast_ref::<Self>(),
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }
}
