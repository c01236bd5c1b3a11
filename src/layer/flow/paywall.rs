//! The browser paywall's path through the layer (see [`paywall`](crate::paywall)): which 402 is
//! shown as a page, and the page's poll (`X402-Invoice-State`), answered from the receiver.

use std::sync::Arc;

use bytes::Bytes;
use http::header::VARY;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde::Serialize;

use super::Sale;
use super::challenge::Minted;
use crate::facilitator::Facilitator;
use crate::layer::config::Shared;
use crate::layer::respond;
use crate::lnbtc::types::PaymentRequired;
use crate::paywall::accept::prefers_html;
use crate::paywall::{INVOICE_STATE_HEADER, POLL_INTERVAL, Paywall, PaywallPage, RoutePaywall};
use crate::receiver::{InvoiceState, ReceiverError, facilitator_invoice_status};

impl<F: Facilitator> Sale<'_, F> {
    /// The route's paywall: its own, none, or the layer's.
    fn paywall(&self) -> Option<&Arc<Paywall>> {
        match &self.tag.paywall {
            RoutePaywall::Inherit => self.shared.paywall.as_ref(),
            RoutePaywall::Off => None,
            RoutePaywall::On(paywall) => Some(paywall),
        }
    }

    /// `challenge` as the page when the request is a browser's navigation without a payment
    /// (`GET` or `HEAD`, `Accept` preferring HTML) on a route with a paywall and an `lnbtc` offer
    /// (`required`); else as it is. On a route with a paywall, either answer says `Vary:
    /// Accept`. The page's invoice is remembered, so that its page may poll it.
    pub(super) fn with_page<B: From<Bytes>>(
        &self,
        mut challenge: Response<B>,
        head: &Parts,
        required: Option<&PaymentRequired>,
        minted: &Minted,
    ) -> Response<B> {
        let Some(paywall) = self.paywall() else {
            return challenge;
        };
        challenge
            .headers_mut()
            .append(VARY, HeaderValue::from_static("Accept"));
        let navigation = matches!(head.method, Method::GET | Method::HEAD)
            && !self.carried_payment
            && prefers_html(&head.headers);
        let Some(required) = required.filter(|_| navigation) else {
            return challenge;
        };
        let shared = self.shared;
        let checked = &minted.checked;
        let expires_at = checked.expires_at().as_secs();
        shared.paged.remember(checked.payment_hash(), expires_at);
        let bound_headers = bound_header_values(&head.headers, self.tag);
        let page = PaywallPage {
            paywall,
            required,
            invoice: &minted.requirements.extra.invoice,
            amount_msat: self.ask.amount,
            payment_hash: checked.payment_hash(),
            expires_in_secs: expires_at.saturating_sub(shared.clock.unix_now().as_secs()),
            expires_at_unix: expires_at,
            network: shared.network,
            bound_headers: &bound_headers,
        };
        crate::paywall::page_response(challenge, &page)
    }
}

/// The values of the route's bound headers as `headers` carry them (repeated lines joined with
/// `, `, as `http:1` joins them), for the page to send again with its payment.
fn bound_header_values(headers: &HeaderMap, tag: &crate::PriceTag) -> Vec<(String, String)> {
    tag.bound_headers
        .names()
        .iter()
        .filter_map(|name| {
            let values: Option<Vec<&str>> = headers
                .get_all(name.as_str())
                .iter()
                .map(|value| value.to_str().ok())
                .collect();
            let values = values.filter(|values| !values.is_empty())?;
            Some((name.clone(), values.join(", ")))
        })
        .collect()
}

/// The poll's answer: `{"paymentHash", "state", "preimage"?}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PollAnswer<'a> {
    payment_hash: &'a str,
    /// `open`, `paid`, `expired` or `cancelled`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    preimage: Option<String>,
}

/// Whether a request is a paywall page's poll.
pub(crate) fn is_poll(headers: &HeaderMap) -> bool {
    headers.contains_key(INVOICE_STATE_HEADER)
}

/// Answers a page's poll (`X402-Invoice-State: <payment hash>`): 200 with the invoice's state
/// (`expired` from the layer's own clock, past its expiry plus the clock skew, without asking
/// anyone), and its preimage once paid; 400 for a header that is not one payment hash; 404
/// for an invoice not offered on a page here (or forgotten), or one its receiver does not
/// know; 501 when the receiver cannot report states; 502/504 when it fails. The receiver is
/// asked at most once a second per invoice; in between, an unpaid invoice is `open`.
pub(crate) async fn answer_poll<F: Facilitator, B: From<Bytes>>(
    shared: &Shared<F>,
    headers: &HeaderMap,
) -> Response<B> {
    let mut values = headers.get_all(INVOICE_STATE_HEADER).iter();
    let hash = match (values.next(), values.next()) {
        (Some(value), None) => payment_hash(value),
        _ => None,
    };
    let Some((hash, hash_hex)) = hash else {
        return respond::error(
            StatusCode::BAD_REQUEST,
            "X402-Invoice-State: one payment hash, 64 lowercase hex characters",
        );
    };
    let now = shared.clock.unix_now().as_secs();
    let Some((paged, may_ask)) =
        shared
            .paged
            .claim_ask(&hash, shared.clock.monotonic(), POLL_INTERVAL)
    else {
        return respond::error(
            StatusCode::NOT_FOUND,
            "no invoice of this payment hash was offered on a payment page here lately",
        );
    };
    let past_expiry = now >= paged.expires_at;
    let answer = |state, preimage| {
        let mut response = respond::json(
            StatusCode::OK,
            &PollAnswer {
                payment_hash: &hash_hex,
                state,
                preimage,
            },
        );
        response
            .headers_mut()
            .insert(VARY, HeaderValue::from_static("X402-Invoice-State"));
        response
    };
    // A paid proof is still accepted up to the skew after the end: ask until then.
    if now >= paged.expires_at.saturating_add(shared.skew_secs) {
        return answer("expired", None);
    }
    if !may_ask {
        return answer(if past_expiry { "expired" } else { "open" }, None);
    }
    let status = match &shared.receiver {
        None => facilitator_invoice_status(&shared.facilitator, &hash).await,
        Some(receiver) => receiver.invoice_status(&hash).await,
    };
    match status {
        Ok(Some(status)) => {
            if let Err(why) = status.check(&hash) {
                tracing::error!(why, payment_hash = %hash_hex, "receiver's invoice state unusable");
                return respond::error(
                    StatusCode::BAD_GATEWAY,
                    "the payment receiver reported an unusable invoice state",
                );
            }
            match status.state {
                InvoiceState::Paid => answer("paid", status.preimage),
                InvoiceState::Open if past_expiry => answer("expired", None),
                InvoiceState::Open => answer("open", None),
                InvoiceState::Cancelled => answer("cancelled", None),
            }
        }
        Ok(None) => respond::error(
            StatusCode::NOT_FOUND,
            "the payment receiver does not know this invoice",
        ),
        Err(ReceiverError::Unsupported) => respond::error(
            StatusCode::NOT_IMPLEMENTED,
            "this server's payment receiver cannot report invoice states: pay with a browser \
             wallet",
        ),
        Err(err) => {
            tracing::warn!(error = %err, "invoice state lookup failed");
            let status = if err.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            respond::error(status, "the payment receiver could not be asked; ask again")
        }
    }
}

/// The payment hash of a poll header: 64 lowercase hex characters.
fn payment_hash(value: &HeaderValue) -> Option<([u8; 32], String)> {
    use bitcoin::hex::FromHex as _;
    let text = value.to_str().ok()?.trim();
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let hash = <[u8; 32]>::from_hex(text).ok()?;
    Some((hash, text.to_owned()))
}
