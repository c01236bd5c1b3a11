//! Wallets: what pays a BOLT11 invoice over Lightning for the `lnbtc` flow and hands back its
//! preimage (x402 v2, upstream `scheme_exact_lnbtc.md`, "Client Payment Construction").
//!
//! One trait, [`Wallet`], and its wallets:
//! - [`LndWallet`]: LND's REST API (`POST /v2/router/send`, `GET /v2/router/track`), with a
//!   macaroon that may pay (`offchain:write`) and LND's `tls.cert` pinned;
//! - [`SimWallet`]: the `POST /pay` of the facilitator service's simulated node or of the mock
//!   facilitator (the demo, users' tests);
//! - `NwcWallet` (feature `nwc`): Nostr Wallet Connect (NIP-47 `pay_invoice`) over a relay.
//!
//! A payment has three outcomes ([`PaymentOutcome`]): paid (the preimage and the fee), failed
//! for good (nothing left the wallet; safe to try again), or **in flight** (not decided: the
//! wallet goes on trying, and the payment may still succeed). An error ([`WalletError`]) is not
//! an outcome: the call may have failed before or after the wallet started paying, so a client
//! treats it as "outcome unknown", asks [`Wallet::track`] and never pays the invoice again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub mod lnd;
#[cfg(feature = "nwc")]
#[cfg_attr(docsrs, doc(cfg(feature = "nwc")))]
pub mod nwc;
pub mod sim;

pub use self::lnd::{LndConfigError, LndWallet, LndWalletConfig};
#[cfg(feature = "nwc")]
#[cfg_attr(docsrs, doc(cfg(feature = "nwc")))]
pub use self::nwc::{NwcUriError, NwcWallet};
pub use self::sim::{DEFAULT_SIM_PAY_URL, SimWallet};

/// The future a [`Wallet`] call returns.
pub type WalletFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, WalletError>> + Send + 'a>>;

/// What paying an invoice came to.
#[derive(Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Paid: the receiver released the preimage.
    Paid {
        /// The preimage, the proof of payment (SHA-256 of it is the invoice's payment hash).
        preimage: [u8; 32],
        /// The routing fee actually paid, in msat.
        fee_msat: u64,
    },
    /// Not decided yet: the wallet is still trying, or the payment is locked in on its route.
    /// It may still succeed: never pay the invoice again, track it.
    InFlight,
    /// Failed for good: nothing left the wallet.
    Failed {
        /// Why, in the wallet's words.
        reason: String,
    },
}

impl fmt::Debug for PaymentOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The preimage buys the request it pays for: never in a log line.
        match self {
            Self::Paid { fee_msat, .. } => f
                .debug_struct("Paid")
                .field("preimage", &"<redacted>")
                .field("fee_msat", fee_msat)
                .finish(),
            Self::InFlight => f.write_str("InFlight"),
            Self::Failed { reason } => f.debug_struct("Failed").field("reason", reason).finish(),
        }
    }
}

/// A wallet call that failed: not a verdict on the payment. After an error from
/// [`Wallet::pay`] the payment may or may not have started.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The wallet did not answer in time.
    #[error("the wallet did not answer within {0} ms")]
    Timeout(u64),
    /// The wallet could not be reached (connection refused, TLS failure, relay down, …).
    #[error("the wallet is unreachable: {0}")]
    Unreachable(String),
    /// The wallet answered with an error status or an error response.
    #[error("the wallet answered {status}: {message}")]
    Status {
        /// The HTTP status (or 0 for a wallet that does not speak HTTP, e.g. NWC).
        status: u16,
        /// The wallet's error message, if it gave one.
        message: String,
    },
    /// The wallet answered something its API does not document, or a preimage that does not
    /// hash to the invoice's payment hash.
    #[error("the wallet answered garbage: {0}")]
    Garbage(String),
    /// The wallet refused before trying (not a BOLT11 invoice, a configuration it cannot use).
    #[error("the wallet refused: {0}")]
    Refused(String),
}

/// Pays BOLT11 invoices over Lightning.
///
/// Implementations check that a preimage they return hashes to the invoice's payment hash
/// ([`WalletError::Garbage`] otherwise) and never log a preimage.
pub trait Wallet: fmt::Debug + Send + Sync + 'static {
    /// Pays `invoice` (BOLT11 with an amount) with at most `max_fee_msat` of routing fees,
    /// waiting for the outcome as long as the wallet's own timeout allows: the outcome, or
    /// [`PaymentOutcome::InFlight`] when the wallet has not decided by then.
    fn pay<'a>(&'a self, invoice: &'a str, max_fee_msat: u64) -> WalletFuture<'a, PaymentOutcome>;

    /// The state of this wallet's payment of `payment_hash` now; `None` when the wallet never
    /// started one (or cannot tell: then the caller must not assume it is safe to pay again).
    fn track<'a>(&'a self, payment_hash: &'a [u8; 32]) -> WalletFuture<'a, Option<PaymentOutcome>>;
}

impl<W: Wallet + ?Sized> Wallet for std::sync::Arc<W> {
    fn pay<'a>(&'a self, invoice: &'a str, max_fee_msat: u64) -> WalletFuture<'a, PaymentOutcome> {
        (**self).pay(invoice, max_fee_msat)
    }

    fn track<'a>(&'a self, payment_hash: &'a [u8; 32]) -> WalletFuture<'a, Option<PaymentOutcome>> {
        (**self).track(payment_hash)
    }
}

/// A duration in whole milliseconds, saturating (for [`WalletError::Timeout`]).
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Checks a wallet's preimage against the invoice's payment hash.
///
/// # Errors
///
/// [`WalletError::Garbage`] when SHA-256 of `preimage` is not `payment_hash`.
pub fn check_preimage(preimage: &[u8; 32], payment_hash: &[u8; 32]) -> Result<(), WalletError> {
    use bitcoin::hashes::{Hash as _, sha256};
    if sha256::Hash::hash(preimage).to_byte_array() == *payment_hash {
        Ok(())
    } else {
        Err(WalletError::Garbage(
            "the preimage does not hash to the invoice's payment hash".into(),
        ))
    }
}
