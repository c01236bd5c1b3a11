//! The 402 challenge both flows answer with: one fresh invoice, offered as the seed flow's
//! `accepts` entry (the body) and as the `lnbtc` requirements (`PAYMENT-REQUIRED`), whichever
//! the route offers. With `lnbtc`, the invoice's only description is the request hash and its
//! expiry is `maxTimeoutSeconds`; the layer checks it by every upstream rule before it leaves.

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};

use super::Sale;
use crate::facilitator::Facilitator;
use crate::invoice::{
    CheckedInvoice, InvoiceExpectation, check_invoice, check_requirements_answer,
};
use crate::layer::respond;
use crate::lnbtc::binding::HTTP_PROFILE;
use crate::lnbtc::invoice::{self as strict, InvoiceTerms};
use crate::lnbtc::types::{self as lnbtc, LnbtcExtra, ResourceInfo};
use crate::receiver::InvoiceRequest;
use crate::types::{ASSET_BTC, LightningExtra, PaymentRequirements, Scheme};

impl<F: Facilitator> Sale<'_, F> {
    /// 402 with `error` and a fresh challenge; 429 when the client or the layer may not have
    /// another invoice minted yet; 502/504 when no usable invoice can be had.
    pub(super) async fn payment_required<B: From<Bytes>>(
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
        let (answer, invoice) = match self.mint().await {
            Ok(minted) => minted,
            Err(refusal) => return refusal,
        };
        // A fresh invoice for every challenge (upstream: never reused across challenges).
        if shared.issued.contains(&answer.extra.invoice)
            || shared.settled.contains(&invoice.payment_hash())
        {
            tracing::error!(
                payment_hash = %invoice.payment_hash_hex(),
                "the receiver handed out an invoice already offered or paid"
            );
            return respond::error(
                StatusCode::BAD_GATEWAY,
                "the payment receiver minted an unusable invoice: one already offered",
            );
        }
        let lnbtc = match &self.bound {
            Some(bound) => match self.lnbtc_requirements(&answer.extra.invoice, &invoice) {
                Ok(requirements) => {
                    let resource = ResourceInfo {
                        url: bound.url.clone(),
                        // Unset (empty) fields are left out rather than sent blank.
                        description: Some(self.ask.description.clone())
                            .filter(|text| !text.is_empty()),
                        mime_type: Some(self.ask.mime_type.clone()).filter(|text| !text.is_empty()),
                    };
                    Some((resource, requirements))
                }
                Err(why) => {
                    tracing::error!(why, "the receiver minted an invoice the lnbtc rules refuse");
                    return respond::error(
                        StatusCode::BAD_GATEWAY,
                        &format!("the payment receiver minted an unusable invoice: {why}"),
                    );
                }
            },
            None => None,
        };
        shared.facilitator_state.learn_payee(invoice.payee());
        shared.issued.remember(&answer.extra.invoice, invoice);
        let v1 = self.offers_v1.then(|| PaymentRequirements {
            resource: self.ask.resource.clone(),
            description: self.ask.description.clone(),
            mime_type: self.ask.mime_type.clone(),
            max_timeout_seconds: self.ask.max_timeout_seconds,
            output_schema: self.tag.output_schema.clone(),
            ..answer
        });
        respond::challenge(error, v1, lnbtc, payer)
    }

    /// A fresh invoice for this sale: from the facilitator's `/requirements` (its answer
    /// checked against the ask), or from the configured receiver (then the seed flow's
    /// requirements are the layer's own). Either way the invoice passed the seed flow's checks:
    /// network, amount, payee (the pinned one, when pinned), unexpired.
    async fn mint<B: From<Bytes>>(
        &self,
    ) -> Result<(PaymentRequirements, CheckedInvoice), Response<B>> {
        let shared = self.shared;
        let now = shared.clock.unix_now();
        let Some(receiver) = &shared.receiver else {
            let answer = match shared.facilitator.requirements(&self.ask).await {
                Ok(answer) => answer,
                Err(err) => {
                    tracing::warn!(error = %err, "requirements failed");
                    return Err(respond::facilitator_failed(&err));
                }
            };
            return match check_requirements_answer(&self.ask, &answer, shared.pay_to.as_ref(), now)
            {
                Ok(invoice) => Ok((answer, invoice)),
                Err(err) => {
                    tracing::error!(error = %err, "facilitator handed out unusable requirements");
                    Err(respond::bad_requirements(&err))
                }
            };
        };
        let ask = &self.ask;
        let request = InvoiceRequest {
            network: ask.network,
            amount_msat: ask.amount,
            description_hash: self
                .bound
                .as_ref()
                .map(|bound| bound.binding.request_hash.0),
            expiry_secs: ask.max_timeout_seconds,
            resource: ask.resource.clone(),
            description: ask.description.clone(),
            mime_type: ask.mime_type.clone(),
        };
        let text = match receiver.create_invoice(&request).await {
            Ok(text) => text,
            Err(err) => {
                tracing::warn!(error = %err, "receiver failed");
                let status = if err.is_timeout() {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                return Err(respond::error(
                    status,
                    "the payment receiver could not mint an invoice",
                ));
            }
        };
        let mut expected = InvoiceExpectation::new(ask.network).amount_msat(ask.amount);
        if let Some(pinned) = shared.pay_to {
            expected = expected.payee(pinned);
        }
        let invoice = match check_invoice(&text, &expected, now) {
            Ok(invoice) => invoice,
            Err(err) => {
                tracing::error!(error = %err, "receiver minted an unusable invoice");
                return Err(respond::error(
                    StatusCode::BAD_GATEWAY,
                    &format!("the payment receiver minted an unusable invoice: {err}"),
                ));
            }
        };
        let answer = PaymentRequirements {
            scheme: Scheme::Exact,
            network: ask.network,
            max_amount_required: ask.amount,
            asset: ASSET_BTC.to_owned(),
            pay_to: invoice.payee().to_string(),
            resource: ask.resource.clone(),
            description: ask.description.clone(),
            mime_type: ask.mime_type.clone(),
            output_schema: None,
            max_timeout_seconds: ask.max_timeout_seconds,
            extra: LightningExtra::new(text),
        };
        Ok((answer, invoice))
    }

    /// The `lnbtc` requirements offering `text` (which passed the seed flow's checks as
    /// `checked`), once the invoice passes every upstream rule: amount, currency, description
    /// hash = the request hash, payee = `payTo`, expiry = `maxTimeoutSeconds`, created no later
    /// than now + skew, unexpired. `Err` names the rule it breaks.
    fn lnbtc_requirements(
        &self,
        text: &str,
        checked: &CheckedInvoice,
    ) -> Result<lnbtc::PaymentRequirements, &'static str> {
        let Some(bound) = &self.bound else {
            return Err("the request is not bound");
        };
        let shared = self.shared;
        let now = shared.clock.unix_now().as_secs();
        let invoice = strict::decode(text).map_err(|_| "it does not decode strictly")?;
        let pay_to = checked.payee();
        let terms = InvoiceTerms {
            network: shared.network,
            amount_msat: self.ask.amount,
            pay_to: &pay_to,
            max_timeout_seconds: self.ask.max_timeout_seconds,
            request_hash: &bound.binding.request_hash,
        };
        invoice.check_terms(&terms, now, shared.skew_secs)?;
        if now >= invoice.end() {
            return Err(crate::lnbtc::reason::INVOICE_EXPIRED);
        }
        Ok(lnbtc::PaymentRequirements::lnbtc(
            shared.network,
            self.ask.amount,
            pay_to.to_string(),
            self.ask.max_timeout_seconds,
            LnbtcExtra {
                invoice: text.to_owned(),
                request_hash: bound.binding.request_hash.to_hex(),
                request_binding_profile: HTTP_PROFILE.to_owned(),
                request_binding_params: bound.params.clone(),
            },
        ))
    }
}
