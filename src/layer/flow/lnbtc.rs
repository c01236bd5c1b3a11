//! The `lnbtc` flow (x402 version 2, upstream scheme `exact` on `lnbtc`, `upfront`): the
//! client paid the challenge's invoice with any wallet and sends the preimage in
//! `PAYMENT-SIGNATURE`. The layer recomputes the requirements for *this* request, runs the
//! scheme's checks in upstream's order, asks the facilitator to `/settle` (never `/verify`),
//! and runs the handler only once the payment hash is recorded as used.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use serde_json::Value;
use tower_service::Service;

use super::{Sale, SettleReport, call_when_ready, may_have_paid, reason_or, report_settle};
use crate::facilitator::{Facilitator, FacilitatorError};
use crate::header::{HeaderError, TakenPayment};
use crate::layer::detach::run_detached;
use crate::layer::guard::PaymentHash;
use crate::layer::payment::{PaymentFlow, VerifiedPayment};
use crate::layer::respond::{self, IN_FLIGHT};
use crate::layer::support::PAYEE_RETRY_AFTER;
use crate::lnbtc::binding::HTTP_PROFILE;
use crate::lnbtc::header::decode_payment_signature;
use crate::lnbtc::reason;
use crate::lnbtc::settle::{self, SettlePolicy, ValidProof};
use crate::lnbtc::types::{
    LnbtcExtra, PaymentRequirements, SCHEME_EXACT, SettleRequest, SettleResponse,
};
use crate::price::Price;
use crate::types;

impl<F: Facilitator> Sale<'_, F> {
    /// Serves a request paying with `PAYMENT-SIGNATURE`.
    pub(super) async fn serve_lnbtc<S, ReqBody, ResBody>(
        &self,
        mut head: Parts,
        body: ReqBody,
        inner: S,
        header: TakenPayment,
        price: Price,
    ) -> Result<Response<ResBody>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: From<Bytes>,
    {
        let (payment, requirements, proof) = match self.check_proof(header, price).await {
            Ok(checked) => checked,
            Err(ProofRefusal::Invalid { reason, detail }) => {
                tracing::info!(reason, %detail, "PAYMENT-SIGNATURE is not a usable payment");
                let refusal = respond::invalid_payment(reason, &detail);
                return Ok(self.refused(refusal, || reason.to_owned(), None).await);
            }
            Err(ProofRefusal::Failed(error)) => {
                return Ok(self.refuse_with_offer(&head, error, None, None).await);
            }
            Err(ProofRefusal::PayeeUnknown(hash)) => {
                tracing::warn!(payment_hash = %hash, "the payee could not be checked yet");
                let refusal = respond::payee_unknown(PAYEE_RETRY_AFTER);
                return Ok(self
                    .refused(refusal, || PAYEE_UNKNOWN.to_owned(), Some(hash))
                    .await);
            }
        };
        let shared = self.shared;
        let hash: PaymentHash = proof.invoice.payment_hash;
        let hash_hex = proof.invoice.payment_hash_hex();
        let Some(claim) = shared.in_flight.try_claim(hash) else {
            tracing::info!(payment_hash = %hash_hex, "invoice already in flight");
            let refusal = respond::invoice_in_flight();
            return Ok(self
                .refused(refusal, || IN_FLIGHT.to_owned(), Some(hash_hex))
                .await);
        };
        if shared.settled.contains(&hash) {
            tracing::info!(payment_hash = %hash_hex, "payment hash already settled here");
            let error = reason::DUPLICATE_SETTLEMENT.to_owned();
            return Ok(self
                .refuse_with_offer(&head, error, None, Some(hash_hex))
                .await);
        }

        let verified = VerifiedPayment {
            // Lightning reveals no payer.
            payer: String::new(),
            payment_hash: hash_hex.clone(),
            amount_msat: price.as_msat(),
            network: shared.network,
            invoice: requirements.invoice().unwrap_or_default().to_owned(),
            settled: true,
            flow: PaymentFlow::Lnbtc,
        };
        let order = SettleRequest::new(payment, &requirements);
        let shared_owned = Arc::clone(shared);
        let (route, method) = (self.route.clone(), self.method.clone());
        let event_payment = verified.clone();
        // Detached: a client hanging up mid-settle cannot make the layer forget the outcome.
        let finished = run_detached(async move {
            let shared = shared_owned;
            let outcome = shared.facilitator.settle_lnbtc(&order).await;
            let may_have_paid = outcome.as_ref().is_ok_and(|settlement| {
                may_have_paid(settlement.success, settlement.error_reason.as_deref())
            });
            if may_have_paid {
                shared.settled.insert(hash);
            }
            let outcome = judge(
                outcome,
                shared.network.lnbtc_id(),
                &event_payment.payment_hash,
            );
            let report = outcome.report(shared.network, may_have_paid);
            report_settle(&shared, (route, method), event_payment, false, report).await;
            // Held until the hooks are done.
            drop(claim);
            outcome
        })
        .await;
        let settlement = match finished {
            Some(Outcome::Paid(settlement)) => settlement,
            Some(Outcome::Refused(settlement)) => {
                let error = reason_or(settlement.error_reason, reason::DUPLICATE_SETTLEMENT);
                tracing::info!(payment_hash = %hash_hex, reason = %error, "lnbtc settle refused");
                // The client learns the outcome in full, whatever the facilitator left out.
                let failure = SettleResponse::failure(shared.network.lnbtc_id(), error.clone());
                let mut refusal = self.payment_required(&head, error, None).await;
                respond::add_lnbtc_payment_response(refusal.headers_mut(), &failure);
                return Ok(refusal);
            }
            Some(Outcome::Failed(err)) => {
                tracing::warn!(payment_hash = %hash_hex, error = %err, "lnbtc settle failed");
                return Ok(respond::facilitator_failed(&err));
            }
            Some(Outcome::Unusable(why)) => {
                tracing::error!(payment_hash = %hash_hex, why, "lnbtc settle answer unusable");
                return Ok(respond::bad_settlement(why));
            }
            None => {
                tracing::error!(payment_hash = %hash_hex, "settle task did not complete");
                return Ok(respond::bad_settlement("the call did not complete"));
            }
        };
        tracing::info!(payment_hash = %hash_hex, "lnbtc payment settled");
        head.extensions.insert(verified);
        // The upfront flow: the payment is taken, whatever the handler answers.
        let mut response = call_when_ready(inner, Request::from_parts(head, body)).await?;
        respond::mark_paid_lnbtc(response.headers_mut(), &settlement);
        Ok(response)
    }

    /// Decodes `PAYMENT-SIGNATURE` and runs the scheme's checks against the requirements of
    /// this request: the payment as received, those requirements, and the valid proof. Then,
    /// unless `payTo` is pinned, the proof's payee must be one the receiver vouched for (the
    /// layer finds out, bounded, when it does not know yet).
    async fn check_proof(
        &self,
        header: TakenPayment,
        price: Price,
    ) -> Result<(Value, PaymentRequirements, ValidProof), ProofRefusal> {
        let shared = self.shared;
        let value = match header {
            TakenPayment::One(value) => value,
            TakenPayment::Several => {
                return Err(ProofRefusal::invalid(
                    reason::INVALID_PAYLOAD,
                    "more than one PAYMENT-SIGNATURE header".to_owned(),
                ));
            }
            TakenPayment::Missing => {
                return Err(ProofRefusal::Failed(
                    respond::PAYMENT_SIGNATURE_REQUIRED.to_owned(),
                ));
            }
        };
        let payment =
            decode_payment_signature(value.as_bytes(), shared.max_header_bytes).map_err(|err| {
                let reason = match err {
                    HeaderError::NotVersion2(_) => reason::INVALID_X402_VERSION,
                    _ => reason::INVALID_PAYLOAD,
                };
                ProofRefusal::invalid(reason, err.to_string())
            })?;
        let network = shared.network.lnbtc_id();
        let accepted = &payment["accepted"];
        if accepted["scheme"].as_str() != Some(SCHEME_EXACT) {
            let detail = format!("scheme {} is not offered here (exact)", accepted["scheme"]);
            return Err(ProofRefusal::invalid(reason::UNSUPPORTED_SCHEME, detail));
        }
        if accepted["network"].as_str() != Some(network) {
            let detail = format!(
                "network {} is not offered here ({network})",
                accepted["network"]
            );
            return Err(ProofRefusal::invalid(reason::NETWORK_MISMATCH, detail));
        }
        let Some(bound) = &self.bound else {
            return Err(ProofRefusal::Failed(reason::REQUEST_BINDING.to_owned()));
        };
        // The pinned node, else the accepted one, vouched for below once the proof holds.
        let pay_to = match shared.pay_to {
            Some(pinned) => pinned.to_string(),
            None => accepted["payTo"].as_str().unwrap_or_default().to_owned(),
        };
        let requirements = PaymentRequirements::lnbtc(
            shared.network,
            price.as_msat(),
            pay_to,
            self.tag.max_timeout_seconds,
            LnbtcExtra {
                // The facilitator settles the accepted invoice, whatever this one says.
                invoice: accepted["extra"]["invoice"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                request_hash: bound.request_hash.clone(),
                request_binding_profile: HTTP_PROFILE.to_owned(),
                request_binding_params: bound.params.clone(),
            },
        );
        let expected = serde_json::to_value(&requirements).unwrap_or(Value::Null);
        let policy = SettlePolicy {
            networks: vec![shared.network],
            skew_secs: shared.skew_secs,
        };
        let now = shared.clock.unix_now().as_secs();
        let proof = settle::validate(&payment, &expected, &policy, now).map_err(|rejection| {
            tracing::info!(
                reason = rejection.reason,
                step = rejection.step,
                detail = %rejection.detail,
                "lnbtc payment refused"
            );
            ProofRefusal::Failed(rejection.reason.to_owned())
        })?;
        if shared.pay_to.is_none() {
            // Without a pin, the payee must be one the receiver vouched for: never one the
            // client chose.
            let payee = proof.invoice.payee;
            match self.vouched_for(&payee).await {
                Some(true) => {}
                Some(false) => {
                    tracing::info!(%payee, "lnbtc payment to a payee the receiver never vouched for");
                    return Err(ProofRefusal::Failed(reason::PAY_TO_MISMATCH.to_owned()));
                }
                None => {
                    return Err(ProofRefusal::PayeeUnknown(proof.invoice.payment_hash_hex()));
                }
            }
        }
        Ok((payment, requirements, proof))
    }
}

/// Why a proof is not settled.
enum ProofRefusal {
    /// Not a usable x402 version 2 payment for this route (upstream's transport: "Invalid
    /// Payment"): 400 with the vocabulary's `reason`, nothing minted.
    Invalid {
        reason: &'static str,
        detail: String,
    },
    /// It fails a check of the scheme: 402 with a fresh challenge, `error` = the reason.
    Failed(String),
    /// It names a payee the layer could not judge (the payment hash, for the log): 503 with
    /// `Retry-After`, never a verdict on a payment the client may have made.
    PayeeUnknown(String),
}

impl ProofRefusal {
    fn invalid(reason: &'static str, detail: String) -> Self {
        ProofRefusal::Invalid { reason, detail }
    }
}

/// The refusal hook's reason for a payee the layer could not judge yet.
const PAYEE_UNKNOWN: &str = "the payee could not be checked yet";

/// What an `lnbtc` settle came to.
enum Outcome {
    /// Recorded this payment hash on this network.
    Paid(SettleResponse),
    /// `success: false`.
    Refused(SettleResponse),
    /// No answer.
    Failed(FacilitatorError),
    /// A success for another payment hash or network.
    Unusable(&'static str),
}

impl Outcome {
    /// The outcome as the settle hooks hear it (a settlement in the seed flow's shape).
    fn report(&self, network: crate::network::Network, may_have_paid: bool) -> SettleReport {
        match self {
            Outcome::Paid(settlement) => {
                SettleReport::Paid(as_seed_settlement(settlement, network))
            }
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
            Outcome::Paid(_) => (StatusCode::OK, String::new()),
            Outcome::Refused(settlement) => (
                StatusCode::PAYMENT_REQUIRED,
                reason_or(
                    settlement.error_reason.clone(),
                    reason::DUPLICATE_SETTLEMENT,
                ),
            ),
            Outcome::Failed(err) => respond::facilitator_failure(err),
            Outcome::Unusable(why) => {
                (StatusCode::BAD_GATEWAY, respond::bad_settlement_reason(why))
            }
        }
    }
}

/// Sorts a settle answer for the payment hash `hash_hex` on the `lnbtc` id `network`.
fn judge(
    outcome: Result<SettleResponse, FacilitatorError>,
    network: &str,
    hash_hex: &str,
) -> Outcome {
    match outcome {
        Err(err) => Outcome::Failed(err),
        Ok(settlement) if !settlement.success => Outcome::Refused(settlement),
        Ok(settlement) if settlement.network != network => {
            Outcome::Unusable("settled on another network")
        }
        Ok(settlement) if settlement.transaction != hash_hex => {
            Outcome::Unusable("settled another payment hash")
        }
        Ok(settlement) => Outcome::Paid(settlement),
    }
}

/// An `lnbtc` settlement in the shape hooks report (the seed flow's, with its network name).
fn as_seed_settlement(
    settlement: &SettleResponse,
    network: crate::network::Network,
) -> types::SettleResponse {
    types::SettleResponse {
        success: settlement.success,
        error_reason: settlement.error_reason.clone(),
        transaction: settlement.transaction.clone(),
        network,
        payer: None,
    }
}
