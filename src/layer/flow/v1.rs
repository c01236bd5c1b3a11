//! The seed flow (x402 version 1): `X-PAYMENT` pre-checks → `/verify` → the handler and
//! `/settle`, in the route's order ([`SettleMode`]).

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use tower_service::Service;

use super::{Sale, SettleReport, call_when_ready, may_have_paid, reason_or, report_settle};
use crate::facilitator::{Facilitator, FacilitatorError};
use crate::header::{TakenPayment, decode_payment_header};
use crate::invoice::{CheckedInvoice, InvoiceExpectation, check_invoice};
use crate::layer::detach::run_detached;
use crate::layer::guard::{InFlightGuard, PaymentHash};
use crate::layer::payment::{PaymentFlow, VerifiedPayment};
use crate::layer::respond::{self, IN_FLIGHT, MALFORMED_PAYMENT, PAYMENT_REQUIRED};
use crate::network::Network;
use crate::price::{Price, SettleMode};
use crate::types::{
    ASSET_BTC, LightningExtra, PaymentPayload, PaymentRequirements, Scheme, SettleResponse,
    VerifyRequest, reason,
};

impl<F: Facilitator> Sale<'_, F> {
    /// Serves a request paying with `X-PAYMENT` (or carrying no payment at all).
    pub(super) async fn serve_v1<S, ReqBody, ResBody>(
        &self,
        mut head: Parts,
        body: ReqBody,
        inner: S,
        payment_header: TakenPayment,
        price: Price,
    ) -> Result<Response<ResBody>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: From<Bytes>,
    {
        let tag = self.tag;
        let payment = match self.pre_check(payment_header, price) {
            Ok(payment) => payment,
            Err(error) => return Ok(self.refuse_with_offer(&head, error, None, None).await),
        };
        // Without a pin, the payee must be one the facilitator vouched for: never one the
        // client chose. An invoice this layer handed out was vouched for when it was minted.
        if !payment.vouched {
            let payee = payment.invoice.payee();
            let error = match self.vouched_for(&payee).await {
                Some(true) => None,
                Some(false) => Some(format!(
                    "Invalid payment: invoice payee {payee} is not the facilitator's node"
                )),
                None => Some(
                    "Invalid payment: the facilitator's node is not known here yet; pay the \
                     invoice of this answer"
                        .to_owned(),
                ),
            };
            if let Some(error) = error {
                return Ok(self.refuse_with_offer(&head, error, None, None).await);
            }
        }
        let hash_hex = payment.invoice.payment_hash_hex();
        let Some(claim) = self.shared.in_flight.try_claim(payment.hash) else {
            tracing::info!(payment_hash = %hash_hex, "invoice already in flight");
            let refusal = respond::invoice_in_flight();
            return Ok(self
                .refused(refusal, || IN_FLIGHT.to_owned(), Some(hash_hex))
                .await);
        };
        if self.shared.settled.contains(&payment.hash) {
            let error = "Invalid payment: this invoice was already settled".to_owned();
            return Ok(self
                .refuse_with_offer(&head, error, None, Some(hash_hex))
                .await);
        }

        let requirements = self.requirements_paid_by(&payment.invoice, &payment.payload);
        let order = VerifyRequest::new(payment.payload, requirements);
        let verdict = match self.shared.facilitator.verify(&order).await {
            Ok(verdict) => verdict,
            Err(err) => {
                tracing::warn!(payment_hash = %hash_hex, error = %err, "verify failed");
                let refusal = respond::facilitator_failed(&err);
                return Ok(self
                    .refused(refusal, || err.to_string(), Some(hash_hex))
                    .await);
            }
        };
        if !verdict.is_valid {
            let error = reason_or(verdict.invalid_reason, reason::UNEXPECTED_VERIFY_ERROR);
            tracing::info!(payment_hash = %hash_hex, reason = %error, "payment refused by verify");
            return Ok(self
                .refuse_with_offer(&head, error, verdict.payer, Some(hash_hex))
                .await);
        }
        let mut verified = VerifiedPayment {
            payer: verdict
                .payer
                .unwrap_or_else(|| order.payment_payload.payload.from.clone()),
            payment_hash: hash_hex,
            amount_msat: price.as_msat(),
            network: self.shared.network,
            invoice: order.payment_payload.payload.invoice.clone(),
            settled: false,
            flow: PaymentFlow::V1,
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
                let settlement = match self.settle(settling).await {
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
                match self.settle(settling).await {
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
        Ok(Payment {
            payload,
            hash: invoice.payment_hash(),
            vouched: shared.pay_to.is_some()
                || issued_here
                || shared.facilitator_state.payee_is_known(&invoice.payee()) == Some(true),
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
            let may_have_paid = outcome.as_ref().is_ok_and(|settlement| {
                may_have_paid(settlement.success, settlement.error_reason.as_deref())
            });
            if may_have_paid {
                shared.settled.insert(hash);
            }
            let outcome = judge(outcome, shared.network, &payment.payment_hash);
            let report = outcome.report(may_have_paid);
            report_settle(&shared, (route, method), payment, handler_ran, report).await;
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

/// A payment that passed the layer's own checks.
struct Payment {
    payload: PaymentPayload,
    invoice: CheckedInvoice,
    hash: PaymentHash,
    /// Whether its payee is known good: pinned, an invoice this layer handed out, or a node
    /// the facilitator vouched for.
    vouched: bool,
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
    /// The outcome as the settle hooks hear it.
    fn report(&self, may_have_paid: bool) -> SettleReport {
        match self {
            SettleOutcome::Paid(settlement) => SettleReport::Paid(settlement.clone()),
            failure => {
                let (status, reason) = failure.refusal();
                SettleReport::Failed {
                    status,
                    reason,
                    may_have_paid,
                }
            }
        }
    }

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
