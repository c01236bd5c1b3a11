//! The request path of a priced route: [`serve_priced`] resolves the price, reads and binds the
//! body when the route offers `lnbtc`, and hands the request to the flow its payment header
//! picks:
//!
//! - [`v1`]: `X-PAYMENT` (x402 version 1, the seed flow): pre-checks → `/verify` → handler and
//!   `/settle` (in the route's order);
//! - [`lnbtc`]: `PAYMENT-SIGNATURE` (x402 version 2, scheme `exact` on `lnbtc`): the scheme's
//!   checks → `/settle` → handler.
//!
//! Both share [`challenge`] (the 402: one invoice offered in every flow of the route), the
//! in-flight guard, the settled memory and the hooks. Every refusal is an HTTP response; the
//! inner service's errors pass through untouched.

mod challenge;
mod lnbtc;
#[cfg(feature = "paywall")]
mod paywall;
mod v1;

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::Value;
use tower_service::Service;

use super::config::{Flows, Shared};
use super::handoff::{PricedHere, restore_payment_headers, set_aside_payment_headers};
use super::hooks::{self, PaymentRefused, SettleFailed, Settled};
use super::payment::VerifiedPayment;
use super::respond::{self, MALFORMED_PAYMENT, PAYMENT_REQUIRED, PAYMENT_SIGNATURE_REQUIRED};
use crate::PublicKey;
use crate::facilitator::{BoxError, Facilitator};
use crate::header::{TakenPayment, take_payment_headers};
use crate::lnbtc::binding::{Binding, BindingError, server_http_binding};
use crate::lnbtc::reason as lnbtc_reason;
use crate::price::{PriceSource, PriceTag};
use crate::types::{self, RequirementsRequest};

/// Serves a request to a priced route with `inner`, which is driven to readiness only once the
/// request is let through to it.
pub(crate) async fn serve_priced<S, F, ReqBody, ResBody>(
    shared: Arc<Shared<F>>,
    tag: Arc<PriceTag>,
    inner: S,
    request: Request<ReqBody>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    F: Facilitator,
    ReqBody: Body<Data = Bytes> + From<Bytes>,
    ReqBody::Error: Into<BoxError>,
    ResBody: From<Bytes>,
{
    let (mut head, body) = request.into_parts();
    let mut body = PricedBody::Streaming(body);
    let max_body = shared.max_body_bytes;
    let price = match &tag.source {
        PriceSource::Fixed(price) => *price,
        PriceSource::Dynamic(dynamic) => {
            // Neither the price callback nor a handler sees the payment headers; a request that
            // turns out free leaves them aside for a layer further in.
            set_aside_payment_headers(&mut head.headers, &mut head.extensions);
            match dynamic.price(&head).await {
                Some(price) => price,
                None => return call_when_ready(inner, body.into_request(head)).await,
            }
        }
        PriceSource::DynamicWithBody(dynamic) => {
            set_aside_payment_headers(&mut head.headers, &mut head.extensions);
            body = match body.read_whole(&head, max_body).await {
                Ok(read) => read,
                Err(refusal) => return Ok(refusal),
            };
            match dynamic.price(&head, body.bytes()).await {
                Some(price) => price,
                None => return call_when_ready(inner, body.into_request(head)).await,
            }
        }
    };
    let price = match price.validate() {
        Ok(price) => price,
        Err(err) => {
            tracing::error!(path = head.uri.path(), error = %err, "dynamic price refused");
            return Ok(respond::bad_price());
        }
    };
    if head.extensions.get::<PricedHere>().is_some() {
        // An outer layer already took this payment (upfront, or settle-before-handler): a 500
        // now would lose it. Serve at the outer layer's price, and say so loudly.
        if head
            .extensions
            .get::<VerifiedPayment>()
            .is_some_and(|paid| paid.settled)
        {
            tracing::error!(
                path = head.uri.path(),
                "route priced by two X402 layers; serving the payment the outer one took"
            );
            return call_when_ready(inner, body.into_request(head)).await;
        }
        tracing::error!(path = head.uri.path(), "route priced by two X402 layers");
        return Ok(respond::priced_twice());
    }
    // A paywall page asking whether its invoice was paid, on a route this layer prices now.
    #[cfg(feature = "paywall")]
    if paywall::is_poll(&head) && paywall::route_paywall(&shared, &tag).is_some() {
        return Ok(paywall::answer_poll(&shared, &head.headers).await);
    }
    head.extensions.insert(PricedHere);
    restore_payment_headers(&mut head.headers, &mut head.extensions);
    // The handler never sees the client's payment: it gets `VerifiedPayment` instead.
    let (x_payment, signature) = take_payment_headers(&mut head.headers);
    shared.check_support_in_background();
    let resource = match shared.resource_url(&head) {
        Ok(resource) => resource,
        Err(why) => return Ok(respond::bad_host(&why)),
    };
    let flows = shared.flows_of(&tag);

    // An lnbtc payment commits to the exact body bytes, and a request check judges them: read
    // them (up to the limit), and hand the same bytes on.
    if tag.reads_body(flows) {
        body = match body.read_whole(&head, max_body).await {
            Ok(read) => read,
            Err(refusal) => return Ok(refusal),
        };
    }
    let bound = if flows.lnbtc() {
        match bind(&shared, &tag, &head, body.bytes()) {
            Ok(bound) => Some(bound),
            Err(err) => {
                tracing::info!(path = head.uri.path(), error = %err, "request cannot be bound");
                return Ok(respond::binding_refused(&err));
            }
        }
    } else {
        None
    };
    // What the 402s offer: the route's flows that the facilitator serves.
    let offered = shared.offered(flows);

    let sale = Sale {
        ask: RequirementsRequest {
            description: tag.description.clone(),
            mime_type: tag.mime_type.clone(),
            max_timeout_seconds: tag.max_timeout_seconds,
            // An invoice offered in the lnbtc flow is described by the request hash alone.
            description_hash: bound
                .as_ref()
                .filter(|_| offered.lnbtc())
                .map(|bound| bound.request_hash.clone()),
            ..RequirementsRequest::new(shared.network, price.as_msat(), resource)
        },
        shared: &shared,
        tag: &tag,
        // Only hooks read it.
        route: if shared.hooks.is_empty() {
            String::new()
        } else {
            route_name(&tag, &head)
        },
        method: head.method.clone(),
        carried_payment: !matches!(
            (&x_payment, &signature),
            (TakenPayment::Missing, TakenPayment::Missing)
        ),
        bound,
        offered,
    };

    // A request the route refuses costs nothing: no invoice, no payment taken.
    if let Some(check) = &tag.request_check {
        if let Err(rejection) = check.check(&head, body.bytes()) {
            tracing::info!(path = head.uri.path(), %rejection, "request refused by the route's check");
            let refusal = respond::request_rejected(&rejection);
            return Ok(sale
                .refused(refusal, || rejection.message().to_owned(), None)
                .await);
        }
    }

    let body = body.into_body();
    match (x_payment, signature) {
        (TakenPayment::Missing, TakenPayment::Missing) => {
            let error = if offered.v1() || offered.is_empty() {
                PAYMENT_REQUIRED
            } else {
                PAYMENT_SIGNATURE_REQUIRED
            };
            Ok(sale
                .refuse_with_offer(&head, error.to_owned(), None, None)
                .await)
        }
        // A proof is judged on the route's own terms, whatever the facilitator announced: the
        // client may have paid already.
        (TakenPayment::Missing, signature) if flows.lnbtc() => {
            sale.serve_lnbtc(head, body, inner, signature, price).await
        }
        // An authorization moves nothing until it is settled: a flow the facilitator does not
        // serve gets a 402 offering what it does.
        (x_payment, TakenPayment::Missing) if offered.v1() => {
            sale.serve_v1(head, body, inner, x_payment, price).await
        }
        (TakenPayment::Missing, _) => {
            let refusal = respond::invalid_payment(
                lnbtc_reason::INVALID_X402_VERSION,
                "this route takes X-PAYMENT (x402 version 1) only",
            );
            Ok(sale
                .refused(
                    refusal,
                    || lnbtc_reason::INVALID_X402_VERSION.to_owned(),
                    None,
                )
                .await)
        }
        (_, TakenPayment::Missing) => {
            let error = format!(
                "{MALFORMED_PAYMENT}: this route takes PAYMENT-SIGNATURE (x402 version 2, \
                 exact on lnbtc) only"
            );
            Ok(sale.refuse_with_offer(&head, error, None, None).await)
        }
        _ => {
            let error = format!(
                "{MALFORMED_PAYMENT}: both X-PAYMENT and PAYMENT-SIGNATURE; send one payment"
            );
            Ok(sale.refuse_with_offer(&head, error, None, None).await)
        }
    }
}

/// A priced request's body: as it arrived, or read whole (to bind, price or check it).
enum PricedBody<B> {
    Streaming(B),
    Read(Bytes),
}

impl<B> PricedBody<B>
where
    B: Body<Data = Bytes> + From<Bytes>,
    B::Error: Into<BoxError>,
{
    /// The body read whole (at most `max` bytes), or the answer that refuses it.
    async fn read_whole<R: From<Bytes>>(
        self,
        head: &Parts,
        max: usize,
    ) -> Result<Self, Response<R>> {
        match self {
            PricedBody::Streaming(body) => read_body(body, head, max).await.map(PricedBody::Read),
            read @ PricedBody::Read(_) => Ok(read),
        }
    }

    /// The bytes read; empty when the body was not read.
    fn bytes(&self) -> &Bytes {
        static UNREAD: Bytes = Bytes::new();
        match self {
            PricedBody::Read(bytes) => bytes,
            PricedBody::Streaming(_) => &UNREAD,
        }
    }

    /// The body to hand on: the same bytes when it was read.
    fn into_body(self) -> B {
        match self {
            PricedBody::Streaming(body) => body,
            PricedBody::Read(bytes) => B::from(bytes),
        }
    }

    fn into_request(self, head: Parts) -> Request<B> {
        Request::from_parts(head, self.into_body())
    }
}

/// The body of a priced `lnbtc` route, read whole: 413 over `max` bytes (from
/// `Content-Length` before reading anything, or while reading), 400 when it cannot be read.
async fn read_body<ReqBody, B>(
    body: ReqBody,
    head: &Parts,
    max: usize,
) -> Result<Bytes, Response<B>>
where
    ReqBody: Body<Data = Bytes>,
    ReqBody::Error: Into<BoxError>,
    B: From<Bytes>,
{
    let declared = head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(respond::body_too_large(max));
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(respond::body_too_large(max))
        }
        Err(err) => {
            tracing::info!(error = %err, "request body unreadable");
            Err(respond::unreadable_body())
        }
    }
}

/// A request bound for the `lnbtc` flow (`http:1`).
struct Bound {
    /// The binding: the request hash and its canonical description.
    binding: Binding,
    /// The request hash as 64 lowercase hex characters (`extra.requestHash`, and the
    /// `descriptionHash` a receiver is asked for).
    request_hash: String,
    /// The bound URL: the public origin and the raw request target.
    url: String,
    /// `requestBindingParams`: `{"headers": […]}`.
    params: Value,
}

/// Binds the request to the configured public origin, its raw target, its bound headers and
/// `body` (upstream `http:1`, with the server adapter's origin rules).
fn bind<F>(
    shared: &Shared<F>,
    tag: &PriceTag,
    head: &Parts,
    body: &[u8],
) -> Result<Bound, BindingError> {
    let Some(origin) = &shared.origin else {
        // `build` and `charge` refuse an lnbtc route without an origin.
        return Err(BindingError::binding(
            "no public origin is configured".to_owned(),
        ));
    };
    let target = request_target(head);
    // An absolute-form target, or HTTP/2's `:authority`: the authority the request was sent to.
    let authority = head.uri.authority().map(|authority| authority.as_str());
    let lines: Vec<(&str, &[u8])> = head
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    let binding = server_http_binding(
        origin,
        head.method.as_str(),
        target,
        authority,
        body,
        &tag.bound_headers,
        &lines,
    )?;
    Ok(Bound {
        request_hash: binding.request_hash.to_hex(),
        binding,
        url: format!("{}{target}", origin.as_str()),
        params: tag.bound_headers.params(),
    })
}

/// The raw request target (path and query) as the client sent it: inside axum's `nest`, the
/// layer sees the URI without the nest's prefix, and axum keeps the original beside it.
pub(crate) fn request_target(head: &Parts) -> &str {
    #[cfg(feature = "axum")]
    let uri = head
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&head.uri, |original| &original.0);
    #[cfg(not(feature = "axum"))]
    let uri = &head.uri;
    match uri.path_and_query() {
        Some(target) if target.as_str().starts_with('/') => target.as_str(),
        // `*` and authority-form targets have no path of their own.
        _ => "/",
    }
}

/// The route a price belongs to, for hooks: its declaration in the price table, else axum's
/// matched path, else the request's path.
fn route_name(tag: &PriceTag, head: &Parts) -> String {
    if let Some(route) = &tag.route {
        return route.to_string();
    }
    #[cfg(feature = "axum")]
    if let Some(matched) = head.extensions.get::<axum::extract::MatchedPath>() {
        return matched.as_str().to_owned();
    }
    head.uri.path().to_owned()
}

/// Drives `inner` to readiness, then calls it: readiness is reserved only for requests that
/// reach the inner service.
async fn call_when_ready<S, R>(mut inner: S, request: R) -> Result<S::Response, S::Error>
where
    S: Service<R>,
{
    poll_fn(|cx| inner.poll_ready(cx)).await?;
    inner.call(request).await
}

/// One priced request: what it costs, what to ask the receiver, and how it is bound.
struct Sale<'a, F> {
    shared: &'a Arc<Shared<F>>,
    tag: &'a PriceTag,
    ask: RequirementsRequest,
    /// The route, for hooks.
    route: String,
    method: Method,
    /// Whether the request came with a payment: only then is a refusal reported to the hook.
    carried_payment: bool,
    /// The binding, when the route offers `lnbtc`.
    bound: Option<Bound>,
    /// The flows a 402 offers: the route's, as far as the facilitator serves them.
    offered: Flows,
}

impl<F: Facilitator> Sale<'_, F> {
    /// [`Self::payment_required`], reported to the refusal hook when the request carried a
    /// payment.
    async fn refuse_with_offer<B: From<Bytes>>(
        &self,
        head: &Parts,
        error: String,
        payer: Option<String>,
        payment_hash: Option<String>,
    ) -> Response<B> {
        if !self.carried_payment || self.shared.hooks.payment_refused.is_none() {
            return self.payment_required(head, error, payer).await;
        }
        let response = self.payment_required(head, error.clone(), payer).await;
        self.refused(response, || error, payment_hash).await
    }

    /// `response`, once the refusal hook (if any) has seen it, with the `reason` the payment
    /// was refused for.
    async fn refused<B>(
        &self,
        response: Response<B>,
        reason: impl FnOnce() -> String,
        payment_hash: Option<String>,
    ) -> Response<B> {
        let hook = self.shared.hooks.payment_refused.as_ref();
        if hook.is_none() || !self.carried_payment {
            return response;
        }
        let event = PaymentRefused {
            route: self.route.clone(),
            method: self.method.clone(),
            payment_hash,
            amount_msat: self.ask.amount,
            reason: reason(),
            status: response.status(),
        };
        hooks::fire(hook, "payment_refused", event).await;
        response
    }

    /// Whether `payee` is a node the receiver vouched for (the facilitator's node announced in
    /// `/supported`, when it is the receiver; or the payee of an invoice the receiver minted
    /// for this layer); `None` when the layer cannot tell.
    ///
    /// When it is not known yet, the request waits for one bounded lookup: its turn among
    /// concurrent lookups (a lookup that ended after the request arrived answers it too), one
    /// `/supported` call, and, if the payee is still unknown and `/supported` named no node (or
    /// the receiver is the layer's own), one invoice minted to learn the receiver's node (a node
    /// key may have changed). The facilitator's (and the receiver's) own timeouts bound each
    /// call; a lookup that ended less than a few seconds ago is not repeated.
    async fn vouched_for(&self, payee: &PublicKey) -> Option<bool> {
        let shared = self.shared;
        let state = &shared.facilitator_state;
        if state.payee_is_known(payee) == Some(true) {
            return Some(true);
        }
        let arrived = shared.clock.monotonic();
        let Some(turn) = state
            .lookup_turn(arrived, || shared.clock.monotonic())
            .await
        else {
            return state.payee_is_known(payee);
        };
        if let Err(err) = shared.check_support().await {
            tracing::info!(error = %err, "payee lookup: /supported failed");
        }
        // The facilitator's announced node is the word on its payees; a receiver of the
        // layer's own, or a facilitator that names none, is asked by minting an invoice, whose
        // payee is its node now (a node key may change; a failure is logged where it happens).
        let announced = shared.receiver.is_none() && state.announces_payee();
        if state.payee_is_known(payee) != Some(true) && !announced {
            let _ = self.mint::<Bytes>().await;
        }
        turn.finish(shared.clock.monotonic());
        state.payee_is_known(payee)
    }
}

/// Whether a settle answer says, or may mean, that the payment went through: any success (even
/// one naming another invoice or network: the facilitator recorded something), and a refusal as
/// a duplicate. A failure to answer at all is not remembered: the facilitator's own replay
/// protection refuses a retry if it did record it.
fn may_have_paid(success: bool, error_reason: Option<&str>) -> bool {
    success || error_reason == Some(crate::types::reason::DUPLICATE_SETTLEMENT)
}

/// What a settle came to, as its hooks hear it: the settlement, or the status and reason the
/// client got and whether the facilitator may have paid all the same.
enum SettleReport {
    Paid(types::SettleResponse),
    Failed {
        status: StatusCode,
        reason: String,
        may_have_paid: bool,
    },
}

/// Fires the hook of a settle's outcome (from the detached settle task, both flows): `settled`
/// with the facilitator's `payer` when it named one, else `settle_failed`.
async fn report_settle<F>(
    shared: &Shared<F>,
    (route, method): (String, Method),
    payment: VerifiedPayment,
    handler_ran: bool,
    report: SettleReport,
) {
    let hooks = &shared.hooks;
    match report {
        SettleReport::Paid(settlement) => {
            let event = Settled {
                route,
                method,
                payer: settlement.payer.clone().unwrap_or(payment.payer),
                payment_hash: payment.payment_hash,
                amount_msat: payment.amount_msat,
                network: payment.network,
                handler_ran,
                settlement,
            };
            hooks::fire(hooks.settled.as_ref(), "settled", event).await;
        }
        SettleReport::Failed {
            status,
            reason,
            may_have_paid,
        } => {
            let event = SettleFailed {
                route,
                method,
                payment_hash: payment.payment_hash,
                amount_msat: payment.amount_msat,
                payer: payment.payer,
                reason,
                status,
                handler_ran,
                may_have_paid,
            };
            hooks::fire(hooks.settle_failed.as_ref(), "settle_failed", event).await;
        }
    }
}

/// The facilitator's reason, or `fallback` when it gave none (or a blank one).
fn reason_or(reason: Option<String>, fallback: &str) -> String {
    reason
        .filter(|reason| !reason.trim().is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}
