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
//!
//! **Invoice states, for the browser paywall.** A receiver may also report where one of its
//! invoices stands and, once it is paid, its preimage ([`Receiver::invoice_status`]; over HTTP
//! the facilitator's `GET /invoices/{paymentHash}`, this project's addition to the wire
//! contract). The paywall page of a person who paid from another wallet (a phone scanning the
//! QR code) learns the preimage that way and sends it as its proof. What it reveals, to whom:
//! the preimage of a *paid* invoice, to whoever holds its payment hash, which buys only the one
//! request the invoice is bound to, once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::facilitator::{Facilitator, FacilitatorError};
use crate::network::Network;
use crate::types::RequirementsRequest;

/// Where an invoice stands, as its receiver reports it (`state` of [`InvoiceStatus`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceState {
    /// Not paid (yet): payable until it expires. A payment held but not settled is still open.
    Open,
    /// Paid over Lightning: the receiver has the amount, and reports the preimage.
    Paid,
    /// Cancelled: it can no longer be paid (an expired invoice some nodes cancel, or one the
    /// seed flow paid inside the facilitator's books).
    Cancelled,
}

/// The answer of `GET /invoices/{paymentHash}`: `{"paymentHash", "state", "preimage"?}`, the
/// preimage (64 lowercase hex) present exactly when `state` is `paid`. This project's addition
/// to the wire contract; see the [module](self) for what it reveals to whom. `Debug` redacts
/// the preimage.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceStatus {
    /// The invoice's payment hash, 64 lowercase hex.
    pub payment_hash: String,
    /// Where it stands.
    pub state: InvoiceState,
    /// Its preimage, 64 lowercase hex, when it is paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preimage: Option<String>,
}

impl InvoiceStatus {
    /// Checks that this answer is about `payment_hash` and consistent: a preimage exactly when
    /// paid, 64 lowercase hex characters hashing to the payment hash. `Err` says what is wrong.
    pub fn check(&self, payment_hash: &[u8; 32]) -> Result<(), &'static str> {
        use crate::lnbtc::invoice::{decode_lower_hex, encode_lower_hex};
        use bitcoin::hashes::{Hash as _, sha256};
        if self.payment_hash != encode_lower_hex(payment_hash) {
            return Err("the answer names another payment hash");
        }
        match (self.state, &self.preimage) {
            (InvoiceState::Paid, Some(preimage)) => {
                let bytes = decode_lower_hex::<32>(preimage)
                    .map_err(|_| "the preimage is not 64 lowercase hex characters")?;
                if sha256::Hash::hash(&bytes).to_byte_array() != *payment_hash {
                    return Err("the preimage does not hash to the payment hash");
                }
                Ok(())
            }
            (InvoiceState::Paid, None) => Err("a paid invoice's answer carries no preimage"),
            (_, Some(_)) => Err("an unpaid invoice's answer carries a preimage"),
            (_, None) => Ok(()),
        }
    }
}

impl fmt::Debug for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvoiceStatus")
            .field("payment_hash", &self.payment_hash)
            .field("state", &self.state)
            .field("preimage", &self.preimage.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

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
    /// The receiver cannot report invoice states ([`Receiver::invoice_status`]'s default).
    #[error("this receiver does not report invoice states")]
    Unsupported,
}

impl ReceiverError {
    /// Whether the receiver timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            ReceiverError::Facilitator(err) => err.is_timeout(),
            ReceiverError::Failed { timed_out, .. } => *timed_out,
            ReceiverError::Unsupported => false,
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

    /// Where the invoice of `payment_hash` (one this receiver minted) stands, with its
    /// preimage once paid; `Ok(None)` when the receiver does not know it. The browser paywall
    /// polls it for a person who paid from another wallet. The default answers
    /// [`ReceiverError::Unsupported`]: the page then unlocks only through a browser wallet.
    fn invoice_status(
        &self,
        payment_hash: &[u8; 32],
    ) -> impl Future<Output = Result<Option<InvoiceStatus>, ReceiverError>> + Send {
        let _ = payment_hash;
        std::future::ready(Err(ReceiverError::Unsupported))
    }
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

    async fn invoice_status(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<Option<InvoiceStatus>, ReceiverError> {
        facilitator_invoice_status(&self.0, payment_hash).await
    }
}

/// `GET /invoices/{paymentHash}` of `facilitator` as a receiver's answer: a 404 is an invoice
/// it does not know; a 405 or 501 (a facilitator without the call) is
/// [`ReceiverError::Unsupported`].
pub(crate) async fn facilitator_invoice_status<F: Facilitator>(
    facilitator: &F,
    payment_hash: &[u8; 32],
) -> Result<Option<InvoiceStatus>, ReceiverError> {
    match facilitator.invoice_status(payment_hash).await {
        Ok(status) => Ok(Some(status)),
        Err(FacilitatorError::Status {
            status: http::StatusCode::NOT_FOUND,
            ..
        }) => Ok(None),
        Err(FacilitatorError::Status {
            status: http::StatusCode::METHOD_NOT_ALLOWED | http::StatusCode::NOT_IMPLEMENTED,
            ..
        }) => Err(ReceiverError::Unsupported),
        Err(err) => Err(err.into()),
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

    #[cfg_attr(not(feature = "paywall"), allow(dead_code))]
    fn invoice_status<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<InvoiceStatus>, ReceiverError>>;
}

impl<R: Receiver> DynReceiver for R {
    fn create_invoice<'a>(
        &'a self,
        request: &'a InvoiceRequest,
    ) -> BoxFuture<'a, Result<String, ReceiverError>> {
        Box::pin(Receiver::create_invoice(self, request))
    }

    fn invoice_status<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
    ) -> BoxFuture<'a, Result<Option<InvoiceStatus>, ReceiverError>> {
        Box::pin(Receiver::invoice_status(self, payment_hash))
    }
}

impl fmt::Debug for dyn DynReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver")
    }
}
