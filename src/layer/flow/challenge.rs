//! The 402 challenge both flows answer with: one fresh invoice, offered as the seed flow's
//! `accepts` entry (the body) and as the `lnbtc` requirements (`PAYMENT-REQUIRED`), whichever
//! flows the route offers and the facilitator serves. With `lnbtc`, the invoice's only
//! description is the request hash and its expiry is `maxTimeoutSeconds`; the layer checks it by
//! every upstream rule before it leaves, decoding it once for both flows' checks.

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};

use super::{Bound, Sale};
use crate::facilitator::Facilitator;
use crate::invoice::{
    CheckedInvoice, InvoiceCheckError, InvoiceExpectation, RequirementsError,
    check_decoded_requirements_answer,
};
use crate::layer::respond;
use crate::lnbtc::binding::HTTP_PROFILE;
use crate::lnbtc::invoice::{self as strict, DecodedInvoice, InvoiceTerms};
use crate::lnbtc::types::{self as lnbtc, LnbtcExtra, ResourceInfo};
use crate::receiver::InvoiceRequest;
use crate::types::{ASSET_BTC, LightningExtra, PaymentRequirements, Scheme};

/// A fresh invoice for one 402, checked by the rules of every flow it is offered in.
pub(super) struct Minted {
    /// The seed flow's requirements (the facilitator's answer, or the layer's own around a
    /// receiver's invoice).
    pub(super) requirements: PaymentRequirements,
    /// The invoice's facts, as the seed flow's checks established them.
    pub(super) checked: CheckedInvoice,
    /// The `lnbtc` requirements, when the 402 offers that flow.
    pub(super) lnbtc: Option<lnbtc::PaymentRequirements>,
}

impl<F: Facilitator> Sale<'_, F> {
    /// 402 with `error` and a fresh challenge; 429 when the client or the layer may not have
    /// another invoice minted yet; 502/504 when no usable invoice can be had, or when the
    /// facilitator serves none of the route's flows.
    pub(super) async fn payment_required<B: From<Bytes>>(
        &self,
        head: &Parts,
        error: String,
        payer: Option<String>,
    ) -> Response<B> {
        let shared = self.shared;
        if self.offered.is_empty() {
            let flows = shared.flows_of(self.tag);
            tracing::error!(%flows, "the facilitator serves none of this route's flows");
            return respond::no_flow_served(flows);
        }
        if let Some(limiter) = &shared.limiter {
            if let Err(retry_after) = limiter.check(head) {
                // Debug: an unpaid flood must not flood the log too.
                tracing::debug!(?retry_after, "invoice issuance limit reached");
                return respond::too_many_invoices(retry_after);
            }
        }
        let Minted {
            requirements,
            checked,
            lnbtc,
        } = match self.mint().await {
            Ok(minted) => minted,
            Err(refusal) => return refusal,
        };
        // A fresh invoice for every challenge (upstream: never reused across challenges).
        if shared.issued.contains(&requirements.extra.invoice)
            || shared.settled.contains(&checked.payment_hash())
        {
            tracing::error!(
                payment_hash = %checked.payment_hash_hex(),
                "the receiver handed out an invoice already offered or paid"
            );
            return respond::error(
                StatusCode::BAD_GATEWAY,
                "the payment receiver minted an unusable invoice: one already offered",
            );
        }
        #[cfg(feature = "paywall")]
        let facts = super::paywall::InvoiceFacts::of(&checked);
        shared.issued.remember(&requirements.extra.invoice, checked);
        let required = lnbtc.zip(self.bound.as_ref()).map(|(lnbtc, bound)| {
            let resource = ResourceInfo {
                url: bound.url.clone(),
                // Unset (empty) fields are left out rather than sent blank.
                description: Some(self.ask.description.clone()).filter(|text| !text.is_empty()),
                mime_type: Some(self.ask.mime_type.clone()).filter(|text| !text.is_empty()),
            };
            respond::lnbtc_challenge(&error, resource, lnbtc)
        });
        let v1 = self.offered.v1().then(|| PaymentRequirements {
            resource: self.ask.resource.clone(),
            description: self.ask.description.clone(),
            mime_type: self.ask.mime_type.clone(),
            max_timeout_seconds: self.ask.max_timeout_seconds,
            output_schema: self.tag.output_schema.clone(),
            ..requirements
        });
        let challenge = respond::challenge(error, v1, required.as_ref(), payer);
        #[cfg(feature = "paywall")]
        let challenge = self.with_page(challenge, head, required.as_ref(), facts);
        challenge
    }

    /// A fresh invoice for this sale: from the facilitator's `/requirements` (its answer
    /// checked against the ask), or from the configured receiver (then the seed flow's
    /// requirements are the layer's own). The invoice passed the seed flow's checks (network,
    /// amount, payee: the pinned one, when pinned; unexpired) and, when the 402 offers `lnbtc`,
    /// every upstream rule; its payee is then one the layer trusts.
    pub(super) async fn mint<B: From<Bytes>>(&self) -> Result<Minted, Response<B>> {
        let shared = self.shared;
        let requirements = match &shared.receiver {
            None => match shared.facilitator.requirements(&self.ask).await {
                Ok(answer) => answer,
                Err(err) => {
                    tracing::warn!(error = %err, "requirements failed");
                    return Err(respond::facilitator_failed(&err));
                }
            },
            Some(receiver) => match receiver.create_invoice(&self.invoice_request()).await {
                Ok(text) => self.own_requirements(text),
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
            },
        };
        let minted = self.check_minted(requirements)?;
        shared.facilitator_state.learn_payee(minted.checked.payee());
        Ok(minted)
    }

    /// The binding, when this sale's 402 offers the `lnbtc` flow.
    fn lnbtc_bound(&self) -> Option<&Bound> {
        self.bound.as_ref().filter(|_| self.offered.lnbtc())
    }

    /// What the receiver is asked to mint.
    fn invoice_request(&self) -> InvoiceRequest {
        let ask = &self.ask;
        InvoiceRequest {
            network: ask.network,
            amount_msat: ask.amount,
            description_hash: self.lnbtc_bound().map(|bound| bound.binding.request_hash.0),
            expiry_secs: ask.max_timeout_seconds,
            resource: ask.resource.clone(),
            description: ask.description.clone(),
            mime_type: ask.mime_type.clone(),
        }
    }

    /// The seed flow's requirements around a receiver's invoice: the ask's terms, `payTo` =
    /// the invoice's payee (checked before the requirements leave).
    fn own_requirements(&self, text: String) -> PaymentRequirements {
        let ask = &self.ask;
        PaymentRequirements {
            scheme: Scheme::Exact,
            network: ask.network,
            max_amount_required: ask.amount,
            asset: ASSET_BTC.to_owned(),
            // Filled in from the invoice once it is checked.
            pay_to: String::new(),
            resource: ask.resource.clone(),
            description: ask.description.clone(),
            mime_type: ask.mime_type.clone(),
            output_schema: None,
            max_timeout_seconds: ask.max_timeout_seconds,
            extra: LightningExtra::new(text),
        }
    }

    /// What a receiver's invoice must be for the seed flow: the ask's network and amount, and
    /// the pinned payee when one is pinned.
    fn expectation(&self) -> InvoiceExpectation {
        let expected = InvoiceExpectation::new(self.ask.network).amount_msat(self.ask.amount);
        match self.shared.pay_to {
            Some(pinned) => expected.payee(pinned),
            None => expected,
        }
    }

    /// Checks a minted invoice on one strict decoding, for every flow the 402 offers: the seed
    /// flow's facts (network, amount, payee, unexpired; for the facilitator's answer, its terms
    /// against the ask too), then, when the 402 offers `lnbtc`, every upstream rule.
    fn check_minted<B: From<Bytes>>(
        &self,
        mut requirements: PaymentRequirements,
    ) -> Result<Minted, Response<B>> {
        let shared = self.shared;
        let now = shared.clock.unix_now();
        let from_facilitator = shared.receiver.is_none();
        let decoded = strict::decode(&requirements.extra.invoice).map_err(|detail| {
            let err = InvoiceCheckError::Unparsable(detail);
            if from_facilitator {
                unusable_requirements(&RequirementsError::Invoice(err))
            } else {
                unusable_invoice(&err.to_string())
            }
        })?;
        let checked = if from_facilitator {
            let pinned = shared.pay_to.as_ref();
            check_decoded_requirements_answer(&self.ask, &requirements, &decoded, pinned, now)
                .map_err(|err| unusable_requirements(&err))?
        } else {
            let checked = CheckedInvoice::from_decoded(&decoded, &self.expectation(), now)
                .map_err(|err| unusable_invoice(&err.to_string()))?;
            requirements.pay_to = checked.payee().to_string();
            checked
        };
        let lnbtc = self
            .lnbtc_bound()
            .map(|bound| self.lnbtc_requirements(&requirements.extra.invoice, &decoded, bound))
            .transpose()
            .map_err(unusable_invoice)?;
        Ok(Minted {
            requirements,
            checked,
            lnbtc,
        })
    }

    /// The `lnbtc` requirements offering `text` (decoded as `invoice`), once the invoice passes
    /// every upstream rule: amount, currency, description hash = the request hash, payee =
    /// `payTo`, expiry = `maxTimeoutSeconds`, created no later than now + skew, unexpired.
    /// `Err` names the rule it breaks.
    fn lnbtc_requirements(
        &self,
        text: &str,
        invoice: &DecodedInvoice,
        bound: &Bound,
    ) -> Result<lnbtc::PaymentRequirements, &'static str> {
        let shared = self.shared;
        let now = shared.clock.unix_now().as_secs();
        let terms = InvoiceTerms {
            network: shared.network,
            amount_msat: self.ask.amount,
            pay_to: &invoice.payee,
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
            invoice.payee.to_string(),
            self.ask.max_timeout_seconds,
            LnbtcExtra {
                invoice: text.to_owned(),
                request_hash: bound.request_hash.clone(),
                request_binding_profile: HTTP_PROFILE.to_owned(),
                request_binding_params: bound.params.clone(),
            },
        ))
    }
}

/// 502: the facilitator's `/requirements` answer is not what was asked, or not consistent.
fn unusable_requirements<B: From<Bytes>>(err: &RequirementsError) -> Response<B> {
    tracing::error!(error = %err, "facilitator handed out unusable requirements");
    respond::bad_requirements(err)
}

/// 502: the receiver's invoice breaks a rule (`why`).
fn unusable_invoice<B: From<Bytes>>(why: &str) -> Response<B> {
    tracing::error!(why, "receiver minted an unusable invoice");
    respond::error(
        StatusCode::BAD_GATEWAY,
        &format!("the payment receiver minted an unusable invoice: {why}"),
    )
}
