//! The request path of a priced route: price → pre-checks → `/verify` → handler and `/settle`
//! (in the route's order). Every refusal is an HTTP response; the inner service's errors pass
//! through untouched.

use std::sync::Arc;

use http::request::Parts;
use http::{Request, Response};
use tower_service::Service;

use super::body::X402Body;
use super::config::Shared;
use super::guard::PaymentHash;
use super::payment::VerifiedPayment;
use super::respond::{self, MALFORMED_PAYMENT, PAYMENT_REQUIRED};
use crate::facilitator::Facilitator;
use crate::header::{X_PAYMENT, decode_payment_header};
use crate::invoice::{
    CheckedInvoice, InvoiceExpectation, check_invoice, check_requirements_answer, unix_now,
};
use crate::price::{Price, PriceSource, PriceTag, SettleMode};
use crate::types::{
    ASSET_BTC, LightningExtra, PaymentPayload, PaymentRequirements, RequirementsRequest, Scheme,
    SettleResponse, VerifyRequest, reason,
};

/// The response type of the layer.
type LayerResponse<B> = Response<X402Body<B>>;

/// Serves a request to a priced route with `inner`, which `poll_ready` made ready.
pub(crate) async fn serve_priced<S, F, ReqBody, ResBody>(
    shared: Arc<Shared<F>>,
    tag: Arc<PriceTag>,
    mut inner: S,
    request: Request<ReqBody>,
) -> Result<LayerResponse<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    F: Facilitator,
{
    let (mut head, body) = request.into_parts();
    let price = match &tag.source {
        PriceSource::Fixed(price) => *price,
        PriceSource::Dynamic(dynamic) => match dynamic.price(&head).await {
            None => {
                let response = inner.call(Request::from_parts(head, body)).await?;
                return Ok(response.map(X402Body::inner));
            }
            Some(price) => match price.validate() {
                Ok(price) => price,
                Err(err) => {
                    tracing::error!(path = head.uri.path(), error = %err, "dynamic price refused");
                    return Ok(respond::bad_price());
                }
            },
        },
    };
    shared.check_support_on_first_use().await;
    let sale = Sale {
        ask: RequirementsRequest {
            description: tag.description.clone(),
            mime_type: tag.mime_type.clone(),
            max_timeout_seconds: tag.max_timeout_seconds,
            ..RequirementsRequest::new(shared.network, price.as_msat(), shared.resource_url(&head))
        },
        shared: &shared,
        tag: &tag,
    };

    let payment = match sale.pre_check(&head, price) {
        Ok(payment) => payment,
        Err(error) => return Ok(sale.payment_required(error, None).await),
    };
    let hash_hex = payment.invoice.payment_hash_hex();
    let Some(_claim) = shared.in_flight.try_claim(payment.hash) else {
        tracing::info!(payment_hash = %hash_hex, "invoice already in flight");
        return Ok(respond::invoice_in_flight());
    };
    if shared.settled.contains(&payment.hash) {
        let error = "Invalid payment: this invoice was already settled".to_owned();
        return Ok(sale.payment_required(error, None).await);
    }

    let order = VerifyRequest::new(payment.payload, sale.requirements_paid_by(&payment.invoice));
    let verdict = match shared.facilitator.verify(&order).await {
        Ok(verdict) => verdict,
        Err(err) => {
            tracing::warn!(payment_hash = %hash_hex, error = %err, "verify failed");
            return Ok(respond::facilitator_failed(&err));
        }
    };
    if !verdict.is_valid {
        let error = reason_or(verdict.invalid_reason, reason::UNEXPECTED_VERIFY_ERROR);
        tracing::info!(payment_hash = %hash_hex, reason = %error, "payment refused by verify");
        return Ok(sale.payment_required(error, verdict.payer).await);
    }
    // The handler gets the payment as `VerifiedPayment`, not the client's authorization.
    head.headers.remove(X_PAYMENT);
    let mut verified = VerifiedPayment {
        payer: verdict
            .payer
            .unwrap_or_else(|| order.payment_payload.payload.from.clone()),
        payment_hash: hash_hex.clone(),
        amount_msat: price.as_msat(),
        network: shared.network,
        invoice: order.payment_payload.payload.invoice.clone(),
        settled: false,
    };

    match tag.settle {
        SettleMode::BeforeHandler => {
            let settlement = match sale.settle(&order, payment.hash, &hash_hex).await {
                Ok(settlement) => settlement,
                Err(refusal) => return Ok(refusal),
            };
            verified.settled = true;
            head.extensions.insert(verified);
            let response = inner.call(Request::from_parts(head, body)).await?;
            Ok(with_settlement(response, &settlement))
        }
        SettleMode::AfterHandler => {
            head.extensions.insert(verified);
            let response = inner.call(Request::from_parts(head, body)).await?;
            let status = response.status();
            if status.as_u16() >= 400 {
                tracing::info!(payment_hash = %hash_hex, %status, "handler failed; not settled");
                return Ok(response.map(X402Body::inner));
            }
            match sale.settle(&order, payment.hash, &hash_hex).await {
                Ok(settlement) => Ok(with_settlement(response, &settlement)),
                // The handler's response is dropped unread.
                Err(refusal) => Ok(refusal),
            }
        }
    }
}

/// The handler's response with `X-PAYMENT-RESPONSE`.
fn with_settlement<B>(response: Response<B>, settlement: &SettleResponse) -> LayerResponse<B> {
    let mut response = response.map(X402Body::inner);
    respond::add_payment_response(response.headers_mut(), settlement);
    response
}

/// A payment that passed the layer's own checks.
struct Payment {
    payload: PaymentPayload,
    invoice: CheckedInvoice,
    hash: PaymentHash,
}

/// One priced request: what it costs and what to ask the facilitator.
struct Sale<'a, F> {
    shared: &'a Shared<F>,
    tag: &'a PriceTag,
    ask: RequirementsRequest,
}

impl<F: Facilitator> Sale<'_, F> {
    /// Decodes `X-PAYMENT` and pre-checks its invoice; the error is the 402's `error`.
    fn pre_check(&self, head: &Parts, price: Price) -> Result<Payment, String> {
        let mut values = head.headers.get_all(X_PAYMENT).iter();
        let Some(value) = values.next() else {
            return Err(PAYMENT_REQUIRED.to_owned());
        };
        if values.next().is_some() {
            return Err(format!(
                "{MALFORMED_PAYMENT}: more than one X-PAYMENT header"
            ));
        }
        let payload = decode_payment_header(value.as_bytes(), self.shared.max_header_bytes)
            .map_err(|err| format!("{MALFORMED_PAYMENT}: {err}"))?;
        let network = self.shared.network;
        if payload.network != network {
            return Err(format!(
                "{MALFORMED_PAYMENT}: payment is on {}, this resource is paid on {network}",
                payload.network
            ));
        }
        let mut expected = InvoiceExpectation::new(network).amount_msat(price.as_msat());
        if let Some(pinned) = self.shared.pay_to {
            expected = expected.payee(pinned);
        }
        let text = &payload.payload.invoice;
        let now = unix_now();
        let invoice = match self.shared.issued.take(text) {
            Some(issued) => issued.check(&expected, now).map(|()| issued),
            None => check_invoice(text, &expected, now),
        }
        .map_err(|err| format!("Invalid payment: {err}"))?;
        if self.shared.pay_to.is_none()
            && self
                .shared
                .facilitator_state
                .payee_is_known(&invoice.payee())
                == Some(false)
        {
            return Err(format!(
                "Invalid payment: invoice payee {} is not the facilitator's node",
                invoice.payee()
            ));
        }
        Ok(Payment {
            payload,
            hash: invoice.payment_hash(),
            invoice,
        })
    }

    /// The requirements a payment of `invoice` meets, as sent to `/verify` and `/settle`.
    fn requirements_paid_by(&self, invoice: &CheckedInvoice) -> PaymentRequirements {
        let ask = &self.ask;
        PaymentRequirements {
            scheme: Scheme::Exact,
            network: ask.network,
            max_amount_required: ask.amount,
            asset: ASSET_BTC.to_owned(),
            pay_to: self.shared.pay_to.unwrap_or(invoice.payee()).to_string(),
            resource: ask.resource.clone(),
            description: ask.description.clone(),
            mime_type: ask.mime_type.clone(),
            output_schema: self.tag.output_schema.clone(),
            max_timeout_seconds: ask.max_timeout_seconds,
            extra: LightningExtra::new(invoice.invoice().to_string()),
        }
    }

    /// 402 with `error` and fresh requirements, or 502/504 when they cannot be had.
    async fn payment_required<B>(&self, error: String, payer: Option<String>) -> LayerResponse<B> {
        let shared = self.shared;
        let answer = match shared.facilitator.requirements(&self.ask).await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::warn!(error = %err, "requirements failed");
                return respond::facilitator_failed(&err);
            }
        };
        let invoice =
            match check_requirements_answer(&self.ask, &answer, shared.pay_to.as_ref(), unix_now())
            {
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

    /// Settles `order`; a refusal is the response to send instead of the handler's.
    async fn settle<B>(
        &self,
        order: &VerifyRequest,
        hash: PaymentHash,
        hash_hex: &str,
    ) -> Result<SettleResponse, LayerResponse<B>> {
        let shared = self.shared;
        let settlement = match shared.facilitator.settle(order).await {
            Ok(settlement) => settlement,
            Err(err) => {
                tracing::warn!(payment_hash = %hash_hex, error = %err, "settle failed");
                return Err(respond::facilitator_failed(&err));
            }
        };
        if !settlement.success {
            let error = reason_or(
                settlement.error_reason.clone(),
                reason::UNEXPECTED_SETTLE_ERROR,
            );
            tracing::info!(payment_hash = %hash_hex, reason = %error, "settle refused");
            // The invoice was not paid: it is still the one to pay, so no fresh one is asked.
            let requirements = order.payment_requirements.clone();
            let mut refusal =
                respond::payment_required(error, requirements, settlement.payer.clone());
            respond::add_payment_response(refusal.headers_mut(), &settlement);
            return Err(refusal);
        }
        if settlement.network != shared.network {
            return Err(respond::bad_settlement("settled on another network"));
        }
        if !settlement.transaction.eq_ignore_ascii_case(hash_hex) {
            return Err(respond::bad_settlement("settled another invoice"));
        }
        shared.settled.insert(hash);
        tracing::info!(payment_hash = %hash_hex, "payment settled");
        Ok(settlement)
    }
}

/// The facilitator's reason, or `fallback` when it gave none (or a blank one).
fn reason_or(reason: Option<String>, fallback: &str) -> String {
    reason
        .filter(|reason| !reason.trim().is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}
