//! Receivers: what mints the invoices a resource server hands out (upstream
//! `scheme_exact_lnbtc.md`, "Terminology and Adapter Requirements": a receiver adapter creates
//! a fresh invoice for an exact msat amount with a caller-supplied description hash).
//!
//! The layer mints one invoice per 402 and offers it in both flows. By default it asks the
//! facilitator (`POST /requirements` with `descriptionHash`: [`FacilitatorReceiver`] is the same
//! call as a standalone receiver); [`X402LayerBuilder::receiver`](crate::layer::X402LayerBuilder::receiver)
//! plugs in another one, such as the mock's (feature `mock`) or a node the operator owns.
//!
//! **The operator's guarantee.** The upstream scheme lets a facilitator check a proof without
//! the receiver: a valid invoice signed by `payTo` plus its preimage is proof of payment. So
//! nobody but this resource server may have invoices issued under the receiver's key (upstream
//! "exclusive issuance authority"): a facilitator node dedicated to this resource server, or a
//! node of the operator's whose invoice macaroon no one else holds. A key shared with parties
//! the operator does not trust needs the upstream "Receiver Key Isolation" tracking, which this
//! crate does not do.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::facilitator::{Facilitator, FacilitatorError};
use crate::network::Network;
use crate::types::RequirementsRequest;

/// What to mint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceRequest {
    /// The network (its BOLT11 currency).
    pub network: Network,
    /// The exact amount, in msat.
    pub amount_msat: u64,
    /// The invoice's only description: this SHA-256 hash (BOLT11 `h`, no `d`). `None` for an
    /// invoice of the seed flow only, described by [`description`](Self::description).
    pub description_hash: Option<[u8; 32]>,
    /// Expiry in seconds; the scheme requires it to equal `maxTimeoutSeconds`.
    pub expiry_secs: u64,
    /// The resource's absolute URL (the facilitator receiver passes it on).
    pub resource: String,
    /// What the payment buys.
    pub description: String,
    /// The MIME type of the resource.
    pub mime_type: String,
}

/// A receiver could not mint an invoice.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// The facilitator receiver's `/requirements` call failed.
    #[error(transparent)]
    Facilitator(#[from] FacilitatorError),
    /// Another receiver failed.
    #[error("receiver failed: {message}")]
    Failed {
        /// What went wrong.
        message: String,
        /// Whether it timed out (the client then gets 504 rather than 502).
        timed_out: bool,
    },
}

impl ReceiverError {
    /// Whether the receiver timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            ReceiverError::Facilitator(err) => err.is_timeout(),
            ReceiverError::Failed { timed_out, .. } => *timed_out,
        }
    }
}

/// Mints fresh invoices. Each call must use a new random preimage (so a new payment hash).
///
/// The layer checks every invoice before offering it, and answers the client 502 instead when
/// it is not: a signed BOLT11 invoice on `request.network` for exactly `amount_msat`, payable
/// to the pinned `payTo` when one is pinned (else its payee becomes a node the layer trusts:
/// the key must be this server's alone, see the [module](self)), unexpired, and, when
/// `description_hash` is set, described only by that hash (BOLT11 `h`, no `d`), expiring after
/// exactly `expiry_secs` and created no later than now plus the layer's clock skew. An
/// invoice the layer already offered or saw settled is refused too.
///
/// ```
/// use x402_lightning::mock::MockFacilitator;
/// use x402_lightning::receiver::{InvoiceRequest, Receiver, ReceiverError};
///
/// /// A receiver that mints through a node client of the operator's (here the mock's).
/// struct MyNode(MockFacilitator);
///
/// impl Receiver for MyNode {
///     async fn create_invoice(&self, request: &InvoiceRequest) -> Result<String, ReceiverError> {
///         self.0.create_invoice(request).await
///     }
/// }
/// # let _ = MyNode(MockFacilitator::new());
/// ```
pub trait Receiver: Send + Sync + 'static {
    /// A fresh signed BOLT11 invoice for `request`.
    fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> impl Future<Output = Result<String, ReceiverError>> + Send;
}

/// The facilitator as receiver: `POST /requirements` with `descriptionHash` (the project's
/// addition to the facilitator API); the answer's `extra.invoice` is the invoice.
#[derive(Clone, Debug)]
pub struct FacilitatorReceiver<F>(pub F);

impl<F: Facilitator> Receiver for FacilitatorReceiver<F> {
    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<String, ReceiverError> {
        let answer = self.0.requirements(&requirements_request(request)).await?;
        Ok(answer.extra.invoice)
    }
}

/// The `/requirements` body that asks for `request`'s invoice.
pub(crate) fn requirements_request(request: &InvoiceRequest) -> RequirementsRequest {
    RequirementsRequest {
        description: request.description.clone(),
        mime_type: request.mime_type.clone(),
        max_timeout_seconds: request.expiry_secs,
        description_hash: request.description_hash.map(|hash| hex(&hash)),
        ..RequirementsRequest::new(request.network, request.amount_msat, &request.resource)
    }
}

fn hex(bytes: &[u8]) -> String {
    use bitcoin::hex::DisplayHex as _;
    bytes.to_lower_hex_string()
}

/// A boxed future, for receivers held as trait objects.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Receiver`] as a trait object.
pub(crate) trait DynReceiver: Send + Sync + 'static {
    fn create_invoice<'a>(
        &'a self,
        request: &'a InvoiceRequest,
    ) -> BoxFuture<'a, Result<String, ReceiverError>>;
}

impl<R: Receiver> DynReceiver for R {
    fn create_invoice<'a>(
        &'a self,
        request: &'a InvoiceRequest,
    ) -> BoxFuture<'a, Result<String, ReceiverError>> {
        Box::pin(Receiver::create_invoice(self, request))
    }
}

impl fmt::Debug for dyn DynReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver")
    }
}
