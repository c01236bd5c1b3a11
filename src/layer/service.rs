//! [`X402Layer`] and [`X402Service`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::config::{Shared, X402LayerBuilder};
use super::flow::serve_priced;
use super::future::ResponseFuture;
use super::support::SupportError;
use crate::facilitator::Facilitator;
use crate::header::strip_payment_headers;
use crate::network::Network;

/// A tower layer that charges for priced routes with x402 over Lightning.
///
/// Built with [`X402Layer::builder`]; cheap to clone (clones share the in-flight guard and the
/// settled-invoice memory).
pub struct X402Layer<F> {
    pub(crate) shared: Arc<Shared<F>>,
}

impl<F: Facilitator> X402Layer<F> {
    /// Starts a layer paid through `facilitator` on `network`.
    pub fn builder(facilitator: F, network: Network) -> X402LayerBuilder<F> {
        X402LayerBuilder::new(facilitator, network)
    }

    /// Asks the facilitator's `/supported` whether it serves this layer's network (and, when
    /// `payTo` is pinned, with that node), and learns the node it announces. Call it at
    /// start-up to report a misconfiguration early; otherwise the layer starts the same check
    /// in the background on its first priced request (on the tokio runtime; no request waits
    /// for it) and logs the outcome. A failure never stops the layer: priced routes answer 502
    /// until the facilitator works.
    pub async fn check_facilitator(&self) -> Result<(), SupportError> {
        // Counts as the first-use check: requests do not repeat it right away.
        self.shared
            .facilitator_state
            .claim_check(self.shared.clock.monotonic());
        self.shared.check_support().await
    }

    /// The facilitator this layer pays through.
    pub fn facilitator(&self) -> &F {
        &self.shared.facilitator
    }

    /// The network this layer is paid on.
    pub fn network(&self) -> Network {
        self.shared.network
    }
}

impl<F> Clone for X402Layer<F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<F> fmt::Debug for X402Layer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("X402Layer").field(&self.shared).finish()
    }
}

impl<S, F> Layer<S> for X402Layer<F> {
    type Service = X402Service<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        X402Service {
            inner,
            shared: Arc::clone(&self.shared),
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
    shared: Arc<Shared<F>>,
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
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for X402Service<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X402Service")
            .field("inner", &self.inner)
            .field("config", &self.shared)
            .finish()
    }
}

impl<S, F, ReqBody, ResBody> Service<Request<ReqBody>> for X402Service<S, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    F: Facilitator,
    ReqBody: Send + 'static,
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
            method => self.shared.prices.find(method, request.uri().path()),
        };
        let Some(tag) = tag else {
            strip_payment_headers(request.headers_mut());
            return ResponseFuture::free(self.inner.call(request));
        };
        let tag = Arc::clone(tag);
        // A priced request must not hold the readiness `poll_ready` reserved (a concurrency
        // permit, a buffer slot) while the facilitator is asked: release it now, and drive a
        // clone to readiness only once the request is let through.
        let unready = self.inner.clone();
        drop(std::mem::replace(&mut self.inner, unready));
        let inner = self.inner.clone();
        let shared = Arc::clone(&self.shared);
        ResponseFuture::priced(Box::pin(serve_priced(shared, tag, inner, request)))
    }
}
