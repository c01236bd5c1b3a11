//! The Lightning node that mints the invoices of `POST /requirements` (the *receiver* of
//! the wire contract, `x402_lightning::protocol`): a [`LightningNode`] is asked for an invoice of an exact msat amount whose
//! only description is a 32-byte hash, expiring after a given number of seconds.
//!
//! Two nodes: [`LndNode`] (LND's REST API with an invoice macaroon) and [`SimulatedNode`] (a key
//! in memory that signs invoices and keeps their preimages, for the demo and tests; it receives
//! no real payment). The service checks every invoice a node returns against what it asked for
//! before handing it out, so a node cannot slip a wrong amount, payee or expiry past it.

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvoiceRequest {
    /// The network: the invoice's BOLT11 currency must be this network's.
    pub network: Network,
    /// The amount in msat (at least 1).
    pub amount_msat: u64,
    /// The invoice's only description (BOLT11 `h`): the lnbtc request hash.
    pub description_hash: [u8; 32],
    /// Seconds after its creation until the invoice expires (`maxTimeoutSeconds`).
    pub expiry_secs: u64,
}

/// A node that mints invoices.
pub trait LightningNode: fmt::Debug + Send + Sync + 'static {
    /// The node's public key: the payee of its invoices, the `payTo` of its requirements.
    fn node_id(&self) -> NodeFuture<'_, PublicKey>;

    /// Mints an invoice and returns it as BOLT11 text.
    fn create_invoice<'a>(&'a self, request: &'a InvoiceRequest) -> NodeFuture<'a, String>;
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
