//! The facilitator's Lightning node (the *receiver* of the wire contract,
//! `x402_lightning::protocol`, and the payer of withdrawals): a [`LightningNode`] mints invoices
//! of an exact msat amount ([`InvoiceRequest`]), reports an invoice's state and preimage, cancels
//! an invoice (so a seed-flow settle can pay it inside the books), and pays an invoice of another
//! node within a fee limit, then tracks that payment (withdrawals, `PROTOCOL.md` Part 3).
//!
//! Two nodes: [`LndNode`] (LND's REST API) and [`SimulatedNode`] (a key in memory that signs
//! invoices and keeps their preimages, for the demo and tests; it receives no real payment and
//! plays the Lightning network). The service checks every invoice a node returns against what it
//! asked for before handing it out, so a node cannot slip a wrong amount, payee or expiry past it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bitcoin::secp256k1::PublicKey;
use x402_lightning::Network;

pub mod lnd;
pub mod simulated;

pub use self::lnd::{LndConfig, LndNode};
pub use self::simulated::SimulatedNode;

/// The future a [`LightningNode`] call returns.
pub type NodeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, NodeError>> + Send + 'a>>;

/// What to mint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceRequest {
    /// The network: the invoice's BOLT11 currency must be this network's.
    pub network: Network,
    /// The amount in msat (at least 1).
    pub amount_msat: u64,
    /// The invoice's only description: BOLT11 `h` or `d`.
    pub description: InvoiceDescription,
    /// Seconds after its creation until the invoice expires (`maxTimeoutSeconds`).
    pub expiry_secs: u64,
}

/// An invoice's description: exactly one of BOLT11's `h` and `d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvoiceDescription {
    /// BOLT11 `h`, a 32-byte hash: the lnbtc request hash.
    Hash([u8; 32]),
    /// BOLT11 `d`, a text (at most 639 bytes, BOLT11's limit): the seed flow's description, a
    /// deposit's `deposit to <account>`.
    Text(String),
}

/// Where an invoice of the node stands (LND's `Invoice.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceState {
    /// Not paid yet; still payable until it expires.
    Open,
    /// A payment is held (hold invoices); not settled.
    Accepted,
    /// Paid over Lightning: the node has received the amount.
    Settled,
    /// Cancelled: it can no longer be paid.
    Canceled,
}

/// What the node knows of one of its invoices.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InvoiceLookup {
    /// Its state.
    pub state: InvoiceState,
    /// Its preimage (a node knows the preimages of the invoices it minted), when it reports it.
    pub preimage: Option<[u8; 32]>,
    /// What was received, in msat (0 unless settled).
    pub amount_paid_msat: u64,
}

impl fmt::Debug for InvoiceLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The preimage is a secret until the invoice is paid: never in a log line.
        f.debug_struct("InvoiceLookup")
            .field("state", &self.state)
            .field("preimage", &self.preimage.map(|_| "<redacted>"))
            .field("amount_paid_msat", &self.amount_paid_msat)
            .finish()
    }
}

/// What cancelling an invoice did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The invoice is cancelled (now, or it already was): it can no longer be paid.
    Cancelled,
    /// The invoice was already paid over Lightning: it cannot be cancelled.
    AlreadyPaid,
    /// The node does not know the invoice.
    Unknown,
}

/// An outgoing payment's state (LND's `Payment.status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Not decided yet: the node is still trying, or the payment is locked in somewhere.
    InFlight,
    /// Paid: the receiver released its preimage.
    Succeeded {
        /// The preimage, the proof of payment.
        preimage: [u8; 32],
        /// The routing fee actually paid, in msat.
        fee_msat: u64,
    },
    /// Failed for good: nothing left the node (a failed payment may be tried again).
    Failed {
        /// Why, in the node's words (LND's `failure_reason`).
        reason: String,
    },
}

/// A payment to make: an invoice of another node, within a fee limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentRequest<'a> {
    /// The BOLT11 invoice (with an amount).
    pub invoice: &'a str,
    /// The most the routing may cost, in msat.
    pub max_fee_msat: u64,
    /// How long the node may keep trying before it gives up, in seconds.
    pub timeout_secs: u32,
}

/// A Lightning node: mints, looks up and cancels its invoices; pays and tracks payments.
pub trait LightningNode: fmt::Debug + Send + Sync + 'static {
    /// The node's public key: the payee of its invoices, the `payTo` of its requirements.
    fn node_id(&self) -> NodeFuture<'_, PublicKey>;

    /// Mints an invoice and returns it as BOLT11 text.
    fn create_invoice<'a>(&'a self, request: &'a InvoiceRequest) -> NodeFuture<'a, String>;

    /// The state and preimage of the node's invoice of `payment_hash`; `None` when the node does
    /// not know it.
    fn lookup_invoice<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
    ) -> NodeFuture<'a, Option<InvoiceLookup>>;

    /// Cancels the node's invoice of `payment_hash`, so that it can no longer be paid over
    /// Lightning. Cancelling a cancelled invoice is [`Cancelled::Cancelled`] again.
    fn cancel_invoice<'a>(&'a self, payment_hash: &'a [u8; 32]) -> NodeFuture<'a, Cancelled>;

    /// Pays `request.invoice` within its fee limit, waiting at most `wait` for the outcome:
    /// [`PaymentStatus::InFlight`] when the node has not decided by then (it goes on trying;
    /// [`track_payment`](Self::track_payment) learns the rest). A node that refuses before
    /// trying (bad invoice, already paid) answers [`PaymentStatus::Failed`] or an error.
    fn send_payment<'a>(
        &'a self,
        request: PaymentRequest<'a>,
        wait: std::time::Duration,
    ) -> NodeFuture<'a, PaymentStatus>;

    /// The state of the node's payment of `payment_hash`, waiting at most `wait` for it to be
    /// decided (a zero `wait`: its state now, within one call's timeout); `None` when the node
    /// never started one (it is safe to pay it then).
    fn track_payment<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
        wait: std::time::Duration,
    ) -> NodeFuture<'a, Option<PaymentStatus>>;
}

/// A node call that failed: never a verdict on a payment, always a 502 (or 504) to the caller.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node did not answer in time.
    #[error("the Lightning node did not answer within {0} ms")]
    Timeout(u64),
    /// The node could not be reached (connection refused, TLS failure, …).
    #[error("the Lightning node is unreachable: {0}")]
    Unreachable(String),
    /// The node answered with an error status.
    #[error("the Lightning node answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The node's error message, if it gave one.
        message: String,
    },
    /// The node answered something that is not what its API documents.
    #[error("the Lightning node answered garbage: {0}")]
    Garbage(String),
    /// The node cannot mint this invoice (e.g. its chain is another network).
    #[error("the Lightning node cannot mint this invoice: {0}")]
    Refused(String),
}

impl NodeError {
    /// Whether the call timed out (a 504 rather than a 502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }
}
