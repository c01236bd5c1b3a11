//! [`X402Layer`] and [`X402Service`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::config::{
    ConfigError, Flows, Prices, Pricing, Shared, X402LayerBuilder, validate_every,
};
use super::flow::serve_priced;
use super::future::{PricedFuture, ResponseFuture};
use super::handoff::set_aside_request_payment_headers;
use super::support::SupportError;
use crate::facilitator::{BoxError, Facilitator};
use crate::network::Network;
use crate::price::PriceTag;

/// A tower layer that charges for priced routes with x402 over Lightning.
///
/// Built with [`X402Layer::builder`]; cheap to clone (clones share the in-flight guard, the
/// settled-invoice memory, the issuance limit and the hooks). Prices are declared either on
/// each route with [`charge`](Self::charge) (recommended for axum: a price cannot miss its
/// route), or in a price table with [`X402LayerBuilder::route`] for a layer around a whole
/// service.
///
/// # Panics
///
/// Applying (`Layer::layer`) a layer built without any price (no `.route(..)`, no
/// `.price_every_request(..)`) panics at start-up, as axum does for a bad route: it would
/// serve every request for free. Such a layer is only for handing out [`charge`](Self::charge)
/// layers.
pub struct X402Layer<F> {
    pub(crate) pricing: Arc<Pricing<F>>,
}

impl<F: Facilitator> X402Layer<F> {
    /// Starts a layer paid through `facilitator` on `network`.
    pub fn builder(facilitator: F, network: Network) -> X402LayerBuilder<F> {
        X402LayerBuilder::new(facilitator, network)
    }

    /// A layer that charges `price` for every request it sees, sharing everything else with
    /// this one: facilitator, in-flight guard, settled memory, issuance limit and hooks. Put it
    /// on the route it prices, so the price cannot miss it:
    ///
    /// ```
    /// use axum::{Router, routing::{get, post}};
    /// use x402_lightning::mock::MockFacilitator;
    /// use x402_lightning::{Network, Price, PriceTag, VerifiedPayment, X402Layer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let payments = X402Layer::builder(MockFacilitator::new(), Network::Regtest)
    ///     .public_base_url("https://api.example.com") // lnbtc payments are bound to it
    ///     .build()?;
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "free" }))
    ///     .route(
    ///         "/report",
    ///         get(|paid: VerifiedPayment| async move { format!("report for {}", paid.payer) })
    ///             .route_layer(payments.charge(Price::sats(10))?),
    ///     )
    ///     .route(
    ///         "/summarize",
    ///         post(|paid: VerifiedPayment, body: String| async move {
    ///             format!("{} bytes for {} msat", body.len(), paid.amount_msat)
    ///         })
    ///         .route_layer(payments.charge(PriceTag::fixed(Price::sats(50)).description("A summary"))?),
    ///     );
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// With axum, use `MethodRouter::route_layer` (as above: a method the route does not serve
    /// still gets axum's 405, unpriced), or `Handler::layer` to price one method of several. Not
    /// `MethodRouter::layer`: it also wraps axum's 405 answer, which would then be priced.
    /// `OPTIONS` is never priced, so do not charge a handler that answers every method
    /// (`any(..)`): its `OPTIONS` answer would be free content. The route named in hooks is
    /// axum's matched path.
    ///
    /// A price table around the router and `charge(..)` layers on its routes combine: a
    /// request the table leaves free keeps its payment for the charge inside. A request priced
    /// by both (a table entry for a charged route) is refused with 500, naming the mistake,
    /// unless the outer layer already took its payment (an lnbtc proof, a settle-before-handler
    /// route): it is then served at the outer price, and the mistake logged as an error.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Route`] for a zero price, naming the file and line of the call.
    #[track_caller]
    pub fn charge(&self, price: impl Into<PriceTag>) -> Result<X402Layer<F>, ConfigError> {
        let at = std::panic::Location::caller();
        let tag = validate_every(
            price.into(),
            &format!("charge at {}:{}", at.file(), at.line()),
        )?;
        let shared = &self.pricing.shared;
        if shared.flows_of(&tag).lnbtc() && shared.origin.is_none() {
            return Err(ConfigError::PublicOriginRequired);
        }
        Ok(X402Layer {
            pricing: Arc::new(Pricing {
                prices: Prices::Every(Arc::new(tag)),
                shared: Arc::clone(&self.pricing.shared),
            }),
        })
    }

    /// Asks the facilitator's `/supported` which of this layer's flows it serves on the
    /// layer's network (and, when `payTo` is pinned, with that node), and learns the node it
    /// announces (from any kind that names one, whatever else the answer lacks). Call it at
    /// start-up to report a misconfiguration early; otherwise the layer runs the same check in
    /// the background on its first priced request (on the tokio runtime; no request waits for
    /// it), and again every ten minutes (every minute while a flow is missing or the
    /// facilitator does not answer). A failure never stops the layer: its 402s offer only the
    /// flows the facilitator serves ([`offered_flows`](Self::offered_flows)), and priced routes
    /// answer 502 while it serves none of theirs or does not answer.
    ///
    /// # Errors
    ///
    /// [`SupportError`]: the facilitator could not be asked, does not serve one of the layer's
    /// flows on its network, or announces another node than the pinned `payTo`.
    pub async fn check_facilitator(&self) -> Result<(), SupportError> {
        // Counts as the first-use check: requests do not repeat it right away.
        let shared = &self.pricing.shared;
        shared
            .facilitator_state
            .claim_check(shared.clock.monotonic());
        shared.check_support().await
    }

    /// The flows this layer's 402s offer by default: its own ([`X402LayerBuilder::flows`]),
    /// less any that the facilitator's last `/supported` answer did not list (all of its own
    /// until the facilitator has answered).
    pub fn offered_flows(&self) -> Flows {
        let shared = &self.pricing.shared;
        shared.offered(shared.flows)
    }

    /// The facilitator this layer pays through.
    pub fn facilitator(&self) -> &F {
        &self.pricing.shared.facilitator
    }

    /// The network this layer is paid on.
    pub fn network(&self) -> Network {
        self.pricing.shared.network
    }
}

impl<F> Clone for X402Layer<F> {
    fn clone(&self) -> Self {
        Self {
            pricing: Arc::clone(&self.pricing),
        }
    }
}

impl<F> fmt::Debug for X402Layer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X402Layer")
            .field("config", &self.pricing.shared)
            .field("prices", &self.pricing.prices)
            .finish()
    }
}

impl<S, F> Layer<S> for X402Layer<F> {
    type Service = X402Service<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        assert!(
            !matches!(self.pricing.prices, Prices::Nothing),
            "X402Layer: this layer prices nothing and would serve every request for free; \
             declare prices with .route(..) on its builder, or put payments.charge(price) on \
             each priced route"
        );
        X402Service {
            inner,
            pricing: Arc::clone(&self.pricing),
        }
    }
}

/// The service of [`X402Layer`]: lets free requests through and makes priced ones pay.
///
/// Its response is the inner service's `Response<ResBody>`: free routes pass through untouched,
/// and the layer's own answers are built with `ResBody: From<Bytes>` (axum's `Body`,
/// `http_body_util::Full<Bytes>`; map another body type with `MapResponseBodyLayer` first).
pub struct X402Service<S, F> {
    inner: S,
    pricing: Arc<Pricing<F>>,
}

impl<S, F> X402Service<S, F> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the layer's service, returning the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, F> Clone for X402Service<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            pricing: Arc::clone(&self.pricing),
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for X402Service<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X402Service")
            .field("inner", &self.inner)
            .field("config", &self.pricing.shared)
            .field("prices", &self.pricing.prices)
            .finish()
    }
}

impl<S, F, ReqBody, ResBody> Service<Request<ReqBody>> for X402Service<S, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    F: Facilitator,
    ReqBody: http_body::Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // CORS preflights and unpriced routes are free; payment headers never reach a handler.
        let tag = match request.method() {
            &Method::OPTIONS => None,
            method => self.pricing.prices.find(method, request.uri().path()),
        };
        let Some(tag) = tag else {
            set_aside_request_payment_headers(&mut request);
            return ResponseFuture::free(self.inner.call(request));
        };
        let tag = Arc::clone(tag);
        // A priced request must not hold the readiness `poll_ready` reserved (a concurrency
        // permit, a buffer slot) while the facilitator is asked: release it now, and drive a
        // clone to readiness only once the request is let through.
        let unready = self.inner.clone();
        drop(std::mem::replace(&mut self.inner, unready));
        let inner = self.inner.clone();
        let shared = Arc::clone(&self.pricing.shared);
        ResponseFuture::priced(box_priced(shared, tag, inner, request))
    }
}

/// The boxed future of a priced request. Built out of line: the future is large, and built in
/// `call` it would grow the stack frame every free request pays for.
#[inline(never)]
fn box_priced<S, F, ReqBody, ResBody>(
    shared: Arc<Shared<F>>,
    tag: Arc<PriceTag>,
    inner: S,
    request: Request<ReqBody>,
) -> PricedFuture<ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    F: Facilitator,
    ReqBody: http_body::Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: From<Bytes> + Send + 'static,
{
    Box::pin(serve_priced(shared, tag, inner, request))
}
