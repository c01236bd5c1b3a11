//! The request path of a priced route: price → pre-checks → `/verify` → handler and `/settle`
//! (in the route's order). Every refusal is an HTTP response; the inner service's errors pass
//! through untouched.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use tower_service::Service;

use super::config::Shared;
use super::detach::run_detached;
use super::guard::{InFlightGuard, PaymentHash};
use super::handoff::{PricedHere, restore_payment_headers, set_aside_payment_headers};
use super::hooks::{self, PaymentRefused, SettleFailed, Settled};
use super::payment::VerifiedPayment;
use super::respond::{self, IN_FLIGHT, MALFORMED_PAYMENT, PAYMENT_REQUIRED};
use crate::facilitator::{Facilitator, FacilitatorError};
use crate::header::{TakenPayment, decode_payment_header, take_payment_header};
use crate::invoice::{
    CheckedInvoice, InvoiceExpectation, check_invoice, check_requirements_answer,
};
use crate::network::Network;
use crate::price::{Price, PriceSource, PriceTag, SettleMode};
use crate::types::{
    ASSET_BTC, LightningExtra, PaymentPayload, PaymentRequirements, RequirementsRequest, Scheme,
    SettleResponse, VerifyRequest, reason,
};

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
    ResBody: From<Bytes>,
{
    let (mut head, body) = request.into_parts();
    let price = match &tag.source {
        PriceSource::Fixed(price) => *price,
        PriceSource::Dynamic(dynamic) => {
            // Neither the price callback nor a handler sees the payment headers; a request that
            // turns out free leaves them aside for a layer further in.
            set_aside_payment_headers(&mut head.headers, &mut head.extensions);
            match dynamic.price(&head).await {
                None => return call_when_ready(inner, Request::from_parts(head, body)).await,
                Some(price) => match price.validate() {
                    Ok(price) => price,
                    Err(err) => {
                        tracing::error!(path = head.uri.path(), error = %err, "dynamic price refused");
                        return Ok(respond::bad_price());
                    }
                },
            }
        }
    };
    if head.extensions.get::<PricedHere>().is_some() {
        tracing::error!(path = head.uri.path(), "route priced by two X402 layers");
        return Ok(respond::priced_twice());
    }
    head.extensions.insert(PricedHere);
    restore_payment_headers(&mut head.headers, &mut head.extensions);
    // The handler never sees the client's authorization: it gets `VerifiedPayment` instead.
    let payment_header = take_payment_header(&mut head.headers);
    shared.check_support_in_background();
    let resource = match shared.resource_url(&head) {
        Ok(resource) => resource,
        Err(why) => return Ok(respond::bad_host(&why)),
    };
    let sale = Sale {
        ask: RequirementsRequest {
            description: tag.description.clone(),
            mime_type: tag.mime_type.clone(),
            max_timeout_seconds: tag.max_timeout_seconds,
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
        carried_payment: !matches!(payment_header, TakenPayment::Missing),
    };

    let payment = match sale.pre_check(payment_header, price) {
        Ok(payment) => payment,
        Err(error) => return Ok(sale.refuse_with_offer(&head, error, None, None).await),
    };
    let hash_hex = payment.invoice.payment_hash_hex();
    let Some(claim) = shared.in_flight.try_claim(payment.hash) else {
        tracing::info!(payment_hash = %hash_hex, "invoice already in flight");
        let refusal = respond::invoice_in_flight();
        return Ok(sale
            .refused(refusal, || IN_FLIGHT.to_owned(), Some(hash_hex))
            .await);
    };
    if shared.settled.contains(&payment.hash) {
        let error = "Invalid payment: this invoice was already settled".to_owned();
        return Ok(sale
            .refuse_with_offer(&head, error, None, Some(hash_hex))
            .await);
    }

    let requirements = sale.requirements_paid_by(&payment.invoice, &payment.payload);
    let order = VerifyRequest::new(payment.payload, requirements);
    let verdict = match shared.facilitator.verify(&order).await {
        Ok(verdict) => verdict,
        Err(err) => {
            tracing::warn!(payment_hash = %hash_hex, error = %err, "verify failed");
            let refusal = respond::facilitator_failed(&err);
            return Ok(sale
                .refused(refusal, || err.to_string(), Some(hash_hex))
                .await);
        }
    };
    if !verdict.is_valid {
        let error = reason_or(verdict.invalid_reason, reason::UNEXPECTED_VERIFY_ERROR);
        tracing::info!(payment_hash = %hash_hex, reason = %error, "payment refused by verify");
        return Ok(sale
            .refuse_with_offer(&head, error, verdict.payer, Some(hash_hex))
            .await);
    }
    let mut verified = VerifiedPayment {
        payer: verdict
            .payer
            .unwrap_or_else(|| order.payment_payload.payload.from.clone()),
        payment_hash: hash_hex,
        amount_msat: price.as_msat(),
        network: shared.network,
        invoice: order.payment_payload.payload.invoice.clone(),
        settled: false,
    };

    match tag.settle {
        SettleMode::BeforeHandler => {
            let settling = Settling {
                order,
                claim,
                hash: payment.hash,
                payment: verified.clone(),
                handler_ran: false,
            };
            let settlement = match sale.settle(settling).await {
                Ok(settlement) => settlement,
                Err(refusal) => return Ok(refusal),
            };
            verified.settled = true;
            head.extensions.insert(verified);
            let mut response = call_when_ready(inner, Request::from_parts(head, body)).await?;
            respond::mark_paid(response.headers_mut(), &settlement);
            Ok(response)
        }
        SettleMode::AfterHandler => {
            head.extensions.insert(verified.clone());
            let mut response = call_when_ready(inner, Request::from_parts(head, body)).await?;
            let status = response.status();
            if status.as_u16() >= 400 {
                tracing::info!(
                    payment_hash = %verified.payment_hash, %status, "handler failed; not settled"
                );
                return Ok(response);
            }
            let settling = Settling {
                order,
                claim,
                hash: payment.hash,
                payment: verified,
                handler_ran: true,
            };
            match sale.settle(settling).await {
                Ok(settlement) => {
                    respond::mark_paid(response.headers_mut(), &settlement);
                    Ok(response)
                }
                // The handler's response is dropped unread.
                Err(refusal) => Ok(refusal),
            }
        }
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

/// A payment that passed the layer's own checks.
struct Payment {
    payload: PaymentPayload,
    invoice: CheckedInvoice,
    hash: PaymentHash,
}

/// One priced request: what it costs and what to ask the facilitator.
struct Sale<'a, F> {
    shared: &'a Arc<Shared<F>>,
    tag: &'a PriceTag,
    ask: RequirementsRequest,
    /// The route, for hooks.
    route: String,
    method: Method,
    /// Whether the request came with a payment: only then is a refusal reported to the hook.
    carried_payment: bool,
}

/// A verified payment on its way to `/settle`.
struct Settling {
    order: VerifyRequest,
    /// Holds the invoice until the settle's outcome is recorded and its hooks are done.
    claim: InFlightGuard,
    hash: PaymentHash,
    payment: VerifiedPayment,
    handler_ran: bool,
}

/// What a settle came to.
enum SettleOutcome {
    /// Paid this invoice on this network.
    Paid(SettleResponse),
    /// `success: false`: the invoice is still unpaid.
    Refused(SettleResponse),
    /// No answer.
    Failed(FacilitatorError),
    /// A success for another invoice or network.
    Unusable(&'static str),
}

impl<F: Facilitator> Sale<'_, F> {
    /// Decodes `X-PAYMENT` and pre-checks its invoice; the error is the 402's `error`.
    fn pre_check(&self, header: TakenPayment, price: Price) -> Result<Payment, String> {
        let value = match header {
            TakenPayment::Missing => return Err(PAYMENT_REQUIRED.to_owned()),
            TakenPayment::Several => {
                return Err(format!(
                    "{MALFORMED_PAYMENT}: more than one X-PAYMENT header"
                ));
            }
            TakenPayment::One(value) => value,
        };
        let shared = self.shared;
        let payload = decode_payment_header(value.as_bytes(), shared.max_header_bytes)
            .map_err(|err| format!("{MALFORMED_PAYMENT}: {err}"))?;
        let network = shared.network;
        if payload.network != network {
            return Err(format!(
                "{MALFORMED_PAYMENT}: payment is on {}, this resource is paid on {network}",
                payload.network
            ));
        }
        let mut expected = InvoiceExpectation::new(network).amount_msat(price.as_msat());
        if let Some(pinned) = shared.pay_to {
            expected = expected.payee(pinned);
        }
        let text = &payload.payload.invoice;
        let now = shared.clock.unix_now();
        let (invoice, issued_here) = match shared.issued.take(text) {
            Some(issued) => (issued.check(&expected, now).map(|()| issued), true),
            None => (check_invoice(text, &expected, now), false),
        };
        let invoice = invoice.map_err(|err| format!("Invalid payment: {err}"))?;
        // Without a pin, the payee must be one the facilitator vouched for: never one the
        // client chose. An invoice this layer handed out was vouched for when it was minted.
        if shared.pay_to.is_none() && !issued_here {
            match shared.facilitator_state.payee_is_known(&invoice.payee()) {
                Some(true) => {}
                Some(false) => {
                    return Err(format!(
                        "Invalid payment: invoice payee {} is not the facilitator's node",
                        invoice.payee()
                    ));
                }
                None => {
                    return Err(
                        "Invalid payment: the facilitator's node is not known here yet; \
                                pay the invoice of this answer"
                            .to_owned(),
                    );
                }
            }
        }
        Ok(Payment {
            payload,
            hash: invoice.payment_hash(),
            invoice,
        })
    }

    /// The requirements `payload`'s `invoice` meets, as sent to `/verify` and `/settle`: the
    /// invoice as the client sent it (the text that passed the pre-checks), and its payee,
    /// which is the pinned one or one the facilitator vouched for.
    fn requirements_paid_by(
        &self,
        invoice: &CheckedInvoice,
        payload: &PaymentPayload,
    ) -> PaymentRequirements {
        let ask = &self.ask;
        PaymentRequirements {
            scheme: Scheme::Exact,
            network: ask.network,
            max_amount_required: ask.amount,
            asset: ASSET_BTC.to_owned(),
            pay_to: invoice.payee().to_string(),
            resource: ask.resource.clone(),
            description: ask.description.clone(),
            mime_type: ask.mime_type.clone(),
            output_schema: self.tag.output_schema.clone(),
            max_timeout_seconds: ask.max_timeout_seconds,
            extra: LightningExtra::new(payload.payload.invoice.clone()),
        }
    }

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

    /// 402 with `error` and fresh requirements; 429 when the client or the layer may not have
    /// another invoice minted yet; 502/504 when the requirements cannot be had.
    async fn payment_required<B: From<Bytes>>(
        &self,
        head: &Parts,
        error: String,
        payer: Option<String>,
    ) -> Response<B> {
        let shared = self.shared;
        if let Some(limiter) = &shared.limiter {
            if let Err(retry_after) = limiter.check(head) {
                // Debug: an unpaid flood must not flood the log too.
                tracing::debug!(?retry_after, "invoice issuance limit reached");
                return respond::too_many_invoices(retry_after);
            }
        }
        let answer = match shared.facilitator.requirements(&self.ask).await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::warn!(error = %err, "requirements failed");
                return respond::facilitator_failed(&err);
            }
        };
        let now = shared.clock.unix_now();
        let invoice =
            match check_requirements_answer(&self.ask, &answer, shared.pay_to.as_ref(), now) {
                Ok(invoice) => invoice,
                Err(err) => {
                    tracing::error!(error = %err, "facilitator handed out unusable requirements");
                    return respond::bad_requirements(&err);
                }
            };
        shared.facilitator_state.learn_payee(invoice.payee());
        shared.issued.remember(&answer.extra.invoice, invoice);
        let requirements = PaymentRequirements {
            resource: self.ask.resource.clone(),
            description: self.ask.description.clone(),
            mime_type: self.ask.mime_type.clone(),
            max_timeout_seconds: self.ask.max_timeout_seconds,
            output_schema: self.tag.output_schema.clone(),
            ..answer
        };
        respond::payment_required(error, requirements, payer)
    }

    /// Settles a verified payment; a refusal is the response to send instead of the handler's.
    ///
    /// The call runs detached from the request (on the tokio runtime, when there is one): if
    /// the client hangs up while it is in flight, it still completes, its outcome still lands
    /// in the settled memory and reaches the hooks, and the invoice stays claimed until the
    /// hooks are done.
    async fn settle<B: From<Bytes>>(
        &self,
        settling: Settling,
    ) -> Result<SettleResponse, Response<B>> {
        let Settling {
            order,
            claim,
            hash,
            payment,
            handler_ran,
        } = settling;
        let shared = Arc::clone(self.shared);
        let (route, method) = (self.route.clone(), self.method.clone());
        let hash_hex = payment.payment_hash.clone();
        let finished = run_detached(async move {
            let outcome = shared.facilitator.settle(&order).await;
            let may_have_paid = may_have_paid(&outcome);
            if may_have_paid {
                shared.settled.insert(hash);
            }
            let outcome = judge(outcome, shared.network, &payment.payment_hash);
            let hooks = &shared.hooks;
            match &outcome {
                SettleOutcome::Paid(settlement) => {
                    let event = Settled {
                        route,
                        method,
                        payer: settlement.payer.clone().unwrap_or(payment.payer),
                        payment_hash: payment.payment_hash,
                        amount_msat: payment.amount_msat,
                        network: payment.network,
                        handler_ran,
                        settlement: settlement.clone(),
                    };
                    hooks::fire(hooks.settled.as_ref(), "settled", event).await;
                }
                failure if hooks.settle_failed.is_some() => {
                    let (status, reason) = failure.refusal();
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
                _ => {}
            }
            // Held until the hooks are done: a retry of this invoice (409 meanwhile) cannot be
            // served while a hook still compensates this attempt.
            drop(claim);
            (order, outcome)
        })
        .await;
        let Some((order, outcome)) = finished else {
            tracing::error!(payment_hash = %hash_hex, "settle task did not complete");
            return Err(respond::bad_settlement("the call did not complete"));
        };
        match outcome {
            SettleOutcome::Paid(settlement) => {
                tracing::info!(payment_hash = %hash_hex, "payment settled");
                Ok(settlement)
            }
            SettleOutcome::Refused(settlement) => {
                let error = settle_error(&settlement);
                tracing::info!(payment_hash = %hash_hex, reason = %error, "settle refused");
                // The invoice was not paid: it is still the one to pay, so no fresh one is asked.
                let mut refusal = respond::payment_required(
                    error,
                    order.payment_requirements,
                    settlement.payer.clone(),
                );
                respond::add_payment_response(refusal.headers_mut(), &settlement);
                Err(refusal)
            }
            SettleOutcome::Failed(err) => {
                tracing::warn!(payment_hash = %hash_hex, error = %err, "settle failed");
                Err(respond::facilitator_failed(&err))
            }
            SettleOutcome::Unusable(why) => {
                tracing::error!(payment_hash = %hash_hex, why, "settle answer unusable");
                Err(respond::bad_settlement(why))
            }
        }
    }
}

/// Sorts a settle answer for the payment of `hash_hex` on `network`.
fn judge(
    outcome: Result<SettleResponse, FacilitatorError>,
    network: Network,
    hash_hex: &str,
) -> SettleOutcome {
    match outcome {
        Err(err) => SettleOutcome::Failed(err),
        Ok(settlement) if !settlement.success => SettleOutcome::Refused(settlement),
        Ok(settlement) if settlement.network != network => {
            SettleOutcome::Unusable("settled on another network")
        }
        Ok(settlement) if !settlement.transaction.eq_ignore_ascii_case(hash_hex) => {
            SettleOutcome::Unusable("settled another invoice")
        }
        Ok(settlement) => SettleOutcome::Paid(settlement),
    }
}

/// The `error` of a refused settle: the facilitator's reason, or the x402 fallback.
fn settle_error(settlement: &SettleResponse) -> String {
    reason_or(
        settlement.error_reason.clone(),
        reason::UNEXPECTED_SETTLE_ERROR,
    )
}

impl SettleOutcome {
    /// The status and `error` the client gets for a settle that did not pay.
    fn refusal(&self) -> (StatusCode, String) {
        match self {
            SettleOutcome::Paid(_) => (StatusCode::OK, String::new()),
            SettleOutcome::Refused(settlement) => {
                (StatusCode::PAYMENT_REQUIRED, settle_error(settlement))
            }
            SettleOutcome::Failed(err) => respond::facilitator_failure(err),
            SettleOutcome::Unusable(why) => {
                (StatusCode::BAD_GATEWAY, respond::bad_settlement_reason(why))
            }
        }
    }
}

/// Whether a settle answer says, or may mean, that the invoice was paid: any success (even one
/// naming another invoice or network: the facilitator paid something), and a refusal as a
/// duplicate. A failure to answer at all is not remembered: the facilitator's own replay
/// protection refuses a retry if it did pay.
fn may_have_paid(outcome: &Result<SettleResponse, FacilitatorError>) -> bool {
    match outcome {
        Ok(settlement) => {
            settlement.success
                || settlement.error_reason.as_deref() == Some(reason::DUPLICATE_SETTLEMENT)
        }
        Err(_) => false,
    }
}

/// The facilitator's reason, or `fallback` when it gave none (or a blank one).
fn reason_or(reason: Option<String>, fallback: &str) -> String {
    reason
        .filter(|reason| !reason.trim().is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}
