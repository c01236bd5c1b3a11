//! The facilitator: the remote service that mints invoices, verifies client authorizations and
//! pays invoices. [`Facilitator`] is the seam; [`HttpFacilitator`] speaks the
//! [wire contract](crate::protocol) over HTTP.
//!
//! A verdict (`isValid: false`, `success: false`) is an `Ok` answer; a [`FacilitatorError`]
//! means the facilitator could not give one.

mod error;
mod http;

use std::future::Future;
use std::sync::Arc;

pub use self::error::{BoxError, FacilitatorCall, FacilitatorError};
#[cfg(feature = "mock")]
pub(crate) use self::http::decode_reply;
pub use self::http::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_REPLY_BYTES, DEFAULT_REQUEST_TIMEOUT,
    FacilitatorConfigError, HttpFacilitator, HttpFacilitatorBuilder,
};

use crate::lnbtc::types as lnbtc;
use crate::receiver::InvoiceStatus;
use crate::types::{
    PaymentRequirements, RequirementsRequest, SettleRequest, SettleResponse, SupportedResponse,
    VerifyRequest, VerifyResponse,
};

/// The calls of the facilitator API of the [wire contract](crate::protocol): its four, the
/// `lnbtc` settle, and this project's invoice-state call.
pub trait Facilitator: Send + Sync + 'static {
    /// `POST /requirements`: payment requirements with a fresh invoice.
    fn requirements(
        &self,
        request: &RequirementsRequest,
    ) -> impl Future<Output = Result<PaymentRequirements, FacilitatorError>> + Send;

    /// `POST /verify`: would this authorization be paid?
    fn verify(
        &self,
        request: &VerifyRequest,
    ) -> impl Future<Output = Result<VerifyResponse, FacilitatorError>> + Send;

    /// `POST /settle`: pay the invoice of this authorization.
    fn settle(
        &self,
        request: &SettleRequest,
    ) -> impl Future<Output = Result<SettleResponse, FacilitatorError>> + Send;

    /// `GET /supported`: the kinds of payment the facilitator handles.
    fn supported(&self)
    -> impl Future<Output = Result<SupportedResponse, FacilitatorError>> + Send;

    /// `POST /settle` of x402 version 2 for the `lnbtc` scheme: check the preimage proof and
    /// record its payment hash once (upstream `scheme_exact_lnbtc.md`, "Facilitator
    /// Validation"). A facilitator that only speaks the seed flow keeps the default, which
    /// answers as a facilitator would over HTTP: 501, not implemented.
    fn settle_lnbtc(
        &self,
        request: &lnbtc::SettleRequest,
    ) -> impl Future<Output = Result<lnbtc::SettleResponse, FacilitatorError>> + Send {
        let _ = request;
        std::future::ready(Err(FacilitatorError::Status {
            call: FacilitatorCall::Settle,
            status: ::http::StatusCode::NOT_IMPLEMENTED,
            body_excerpt: "this facilitator does not settle lnbtc payments".to_owned(),
        }))
    }

    /// `GET /invoices/{paymentHash}` (this project's addition, for the browser paywall): where
    /// an invoice the facilitator minted stands, and its preimage once it is paid (see
    /// [`InvoiceStatus`]). A facilitator without the call keeps the default, which answers as
    /// one would over HTTP: 501, not implemented. An invoice it does not know is a 404
    /// ([`FacilitatorError::Status`]).
    fn invoice_status(
        &self,
        payment_hash: &[u8; 32],
    ) -> impl Future<Output = Result<InvoiceStatus, FacilitatorError>> + Send {
        let _ = payment_hash;
        std::future::ready(Err(FacilitatorError::Status {
            call: FacilitatorCall::Invoice,
            status: ::http::StatusCode::NOT_IMPLEMENTED,
            body_excerpt: "this facilitator does not report invoice states".to_owned(),
        }))
    }
}

impl<F: Facilitator> Facilitator for Arc<F> {
    fn requirements(
        &self,
        request: &RequirementsRequest,
    ) -> impl Future<Output = Result<PaymentRequirements, FacilitatorError>> + Send {
        (**self).requirements(request)
    }

    fn verify(
        &self,
        request: &VerifyRequest,
    ) -> impl Future<Output = Result<VerifyResponse, FacilitatorError>> + Send {
        (**self).verify(request)
    }

    fn settle(
        &self,
        request: &SettleRequest,
    ) -> impl Future<Output = Result<SettleResponse, FacilitatorError>> + Send {
        (**self).settle(request)
    }

    fn supported(
        &self,
    ) -> impl Future<Output = Result<SupportedResponse, FacilitatorError>> + Send {
        (**self).supported()
    }

    fn settle_lnbtc(
        &self,
        request: &lnbtc::SettleRequest,
    ) -> impl Future<Output = Result<lnbtc::SettleResponse, FacilitatorError>> + Send {
        (**self).settle_lnbtc(request)
    }

    fn invoice_status(
        &self,
        payment_hash: &[u8; 32],
    ) -> impl Future<Output = Result<InvoiceStatus, FacilitatorError>> + Send {
        (**self).invoice_status(payment_hash)
    }
}
