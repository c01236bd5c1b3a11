//! What a handler behind the layer learns about the payment for its request.

use crate::network::Network;

/// A payment the facilitator verified (seed flow) or settled (`lnbtc`) for this request, placed
/// in the request's extensions before the handler runs.
///
/// With [`SettleMode::AfterHandler`](crate::SettleMode::AfterHandler) (the default) it is
/// verified but not yet settled while the handler runs: the handler's response only leaves once
/// the settle succeeds. Read it in axum with the extractor (feature `axum`):
///
/// ```
/// use x402_lightning::VerifiedPayment;
///
/// async fn weather(payment: VerifiedPayment) -> String {
///     format!("thanks for {} msat (payment {})", payment.amount_msat, payment.payment_hash)
/// }
/// # let _ = weather;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedPayment {
    /// Who pays: the facilitator's `payer`, else the authorization's `from`; empty for an
    /// `lnbtc` payment (Lightning reveals no payer).
    pub payer: String,
    /// The invoice's payment hash, hex.
    pub payment_hash: String,
    /// The amount paid, in msat.
    pub amount_msat: u64,
    /// The network of the invoice.
    pub network: Network,
    /// The BOLT11 invoice paid.
    pub invoice: String,
    /// Whether the invoice is already settled (settle-before-handler routes, and every `lnbtc`
    /// payment: that flow settles upfront).
    pub settled: bool,
    /// The flow it was paid through.
    pub flow: PaymentFlow,
}

/// The flow a payment came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentFlow {
    /// The seed flow (x402 version 1): the client's authorization in `X-PAYMENT`, paid by the
    /// facilitator.
    V1,
    /// Upstream's `exact` on `lnbtc` (x402 version 2): the client paid over Lightning and sent
    /// the preimage in `PAYMENT-SIGNATURE`; settled before the handler runs, no payer known.
    Lnbtc,
}

impl VerifiedPayment {
    /// A payment verified for `amount_msat` on `network`, not yet settled: what the layer puts
    /// in a paid request's extensions. For unit tests of a handler without the layer, insert
    /// one into the request's extensions yourself:
    ///
    /// ```
    /// use axum::{Router, body::Body, routing::get};
    /// use tower::ServiceExt as _;
    /// use x402_lightning::{Network, VerifiedPayment};
    ///
    /// async fn report(paid: VerifiedPayment) -> String {
    ///     format!("{} msat from {}", paid.amount_msat, paid.payer)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let app: Router = Router::new().route("/report", get(report));
    /// let mut request = http::Request::get("/report").body(Body::empty())?;
    /// request.extensions_mut().insert(
    ///     VerifiedPayment::new("02aa…", "9f86d0…", 10_000, Network::Regtest, "lnbcrt100n1…")
    ///         .into_settled(),
    /// );
    /// let response = app.oneshot(request).await?;
    /// let body = axum::body::to_bytes(response.into_body(), 1024).await?;
    /// assert_eq!(&body[..], b"10000 msat from 02aa\xe2\x80\xa6");
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(
        payer: impl Into<String>,
        payment_hash: impl Into<String>,
        amount_msat: u64,
        network: Network,
        invoice: impl Into<String>,
    ) -> Self {
        Self {
            payer: payer.into(),
            payment_hash: payment_hash.into(),
            amount_msat,
            network,
            invoice: invoice.into(),
            settled: false,
            flow: PaymentFlow::V1,
        }
    }

    /// The same payment, settled (as settle-before-handler routes see it).
    #[must_use]
    pub fn into_settled(mut self) -> Self {
        self.settled = true;
        self
    }
}

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;
    use http::{HeaderValue, StatusCode, header};

    use super::VerifiedPayment;

    /// The rejection of the [`VerifiedPayment`] extractor: no price of an
    /// [`X402Layer`](crate::X402Layer) covers the request's route, a server configuration
    /// error (500, and the handler does not run). The usual cause is a price table pattern that
    /// misses its route; declaring the price on the route with
    /// [`X402Layer::charge`](crate::X402Layer::charge) cannot miss.
    #[derive(Clone, Debug, thiserror::Error)]
    #[error(
        "no verified payment on {method} {path}: no X402Layer price covers this route \
         (a typo in the price table? put payments.charge(price) on the route instead)"
    )]
    pub struct MissingPayment {
        method: http::Method,
        path: String,
    }

    impl IntoResponse for MissingPayment {
        fn into_response(self) -> Response {
            let body = serde_json::json!({ "error": self.to_string() }).to_string();
            let mut response = Response::new(body.into());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for VerifiedPayment {
        type Rejection = MissingPayment;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<VerifiedPayment>()
                .cloned()
                .ok_or_else(|| MissingPayment {
                    method: parts.method.clone(),
                    path: parts.uri.path().chars().take(200).collect(),
                })
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedPayment {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<VerifiedPayment>().cloned())
        }
    }
}

#[cfg(feature = "axum")]
pub use self::extract::MissingPayment;
