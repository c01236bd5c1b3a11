//! The browser paywall's path through the layer (see [`paywall`](crate::paywall)): which 402 is
//! shown as a page, and the page's poll (`X402-Invoice-State`), answered from the receiver.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{RETRY_AFTER, VARY};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde::Serialize;

use super::Sale;
use crate::facilitator::Facilitator;
use crate::invoice::CheckedInvoice;
use crate::layer::config::Shared;
use crate::layer::guard::{LastHeard, PollTurn};
use crate::layer::respond;
use crate::lnbtc::invoice::{self as strict, DecodedInvoice};
use crate::lnbtc::types::PaymentRequired;
use crate::network::Network;
use crate::paywall::accept::prefers_html;
use crate::paywall::{INVOICE_STATE_HEADER, POLL_INTERVAL, Paywall, PaywallPage, RoutePaywall};
use crate::price::PriceTag;
use crate::receiver::{InvoiceState, ReceiverError, facilitator_invoice_status};

/// The longest poll header taken: a BOLT11 invoice of the layer's receiver is well under it.
const MAX_POLLED_INVOICE_BYTES: usize = 4096;

/// The route's paywall: its own, none, or the layer's.
pub(crate) fn route_paywall<'a, F>(
    shared: &'a Shared<F>,
    tag: &'a PriceTag,
) -> Option<&'a Arc<Paywall>> {
    match &tag.paywall {
        RoutePaywall::Inherit => shared.paywall.as_ref(),
        RoutePaywall::Off => None,
        RoutePaywall::On(paywall) => Some(paywall),
    }
}

/// What a page shows of the challenge's invoice, beyond the challenge itself.
#[derive(Clone, Copy, Debug)]
pub(super) struct InvoiceFacts {
    payment_hash: [u8; 32],
    /// Unix seconds.
    expires_at: u64,
}

impl InvoiceFacts {
    pub(super) fn of(checked: &CheckedInvoice) -> Self {
        Self {
            payment_hash: checked.payment_hash(),
            expires_at: checked.expires_at().as_secs(),
        }
    }
}

impl<F: Facilitator> Sale<'_, F> {
    /// `challenge` as the page when the request is a browser's navigation without a payment
    /// (`GET` or `HEAD`, `Accept` preferring HTML) on a route with a paywall and an `lnbtc` offer
    /// (`required`) whose bound headers the page can send again; else as it is. On a route with
    /// a paywall, either answer says `Vary: Accept`.
    pub(super) fn with_page<B: From<Bytes>>(
        &self,
        mut challenge: Response<B>,
        head: &Parts,
        required: Option<&PaymentRequired>,
        facts: InvoiceFacts,
    ) -> Response<B> {
        let Some(paywall) = route_paywall(self.shared, self.tag) else {
            return challenge;
        };
        challenge
            .headers_mut()
            .append(VARY, HeaderValue::from_static("Accept"));
        let navigation = matches!(head.method, Method::GET | Method::HEAD)
            && !self.carried_payment
            && prefers_html(&head.headers);
        let Some((required, invoice)) = required
            .filter(|_| navigation)
            .and_then(|required| Some((required, required.accepts.first()?.invoice()?)))
        else {
            return challenge;
        };
        let names = self.tag.bound_headers.names();
        if let Some(name) = names.iter().find(|name| !page_can_send(name)) {
            tracing::debug!(
                header = %name,
                "no paywall page: the route binds a header a page cannot send"
            );
            return challenge;
        }
        let shared = self.shared;
        let expires_at = facts.expires_at;
        let bound_headers = bound_header_values(&head.headers, names);
        let page = PaywallPage {
            paywall,
            required,
            invoice,
            amount_msat: self.ask.amount,
            payment_hash: facts.payment_hash,
            expires_in_secs: expires_at.saturating_sub(shared.clock.unix_now().as_secs()),
            expires_at_unix: expires_at,
            skew_secs: shared.skew_secs,
            network: shared.network,
            bound_headers: &bound_headers,
        };
        crate::paywall::page_response(challenge, &page)
    }
}

/// Whether a page's script can send the request header `name` (lowercase) itself, with the
/// value the navigation sent: not one the Fetch standard forbids scripts to set (the browser's
/// own: `Cookie`, `Host`, `Origin`, `Referer`, `Sec-*`, `Proxy-*`, …), not one browsers set
/// themselves regardless (`User-Agent`), and not a credential, which a page must never carry
/// in its markup (`Authorization`).
fn page_can_send(name: &str) -> bool {
    const FORBIDDEN: [&str; 24] = [
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "access-control-request-private-network",
        "authorization",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "via",
    ];
    !FORBIDDEN.contains(&name) && !name.starts_with("sec-") && !name.starts_with("proxy-")
}

/// The values of the bound headers `names` as `headers` carry them (repeated lines joined with
/// `, `, as `http:1` joins them), for the page to send again with its payment.
fn bound_header_values(headers: &HeaderMap, names: &[String]) -> Vec<(String, String)> {
    names
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
    preimage: Option<&'a str>,
}

/// Whether a request is a paywall page's poll: a `GET` (or `HEAD`) with `X402-Invoice-State`.
pub(crate) fn is_poll(head: &Parts) -> bool {
    matches!(head.method, Method::GET | Method::HEAD)
        && head.headers.contains_key(INVOICE_STATE_HEADER)
}

/// Answers a page's poll, `X402-Invoice-State: <the invoice>`, on a route with a paywall. The
/// invoice must be one of this layer's receiver: a strict BOLT11 invoice on the layer's
/// network, described by a request hash, payable to the pinned payee or to one the receiver
/// vouched for. Then 200 with its state: `expired` past its end plus the clock skew (without
/// asking anyone; its proof is refused from then on), else what the receiver says, `open`,
/// `paid` with the preimage, or `cancelled`, asked at most once a second per invoice (a poll in
/// between gets the last answer). 400 for a header that is not one such invoice; 404 for an
/// invoice of another payee, or one the receiver does not know; 501 when the receiver cannot
/// report states; 502/504 when it fails or answers inconsistently; 503 with `Retry-After`
/// while the layer does not know its receiver's node yet. No state is kept that a poll needs:
/// any instance behind the same facilitator answers any page's poll.
pub(crate) async fn answer_poll<F: Facilitator, B: From<Bytes>>(
    shared: &Arc<Shared<F>>,
    headers: &HeaderMap,
) -> Response<B> {
    let invoice = match polled_invoice(shared, headers) {
        Ok(invoice) => invoice,
        Err(refusal) => return refusal,
    };
    let hash = invoice.payment_hash;
    let hash_hex = invoice.payment_hash_hex();
    let answer = |state, preimage: Option<&str>| {
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
    let now = shared.clock.unix_now().as_secs();
    // A proof is taken up to the skew after the end: the invoice is open until then.
    if now >= invoice.end().saturating_add(shared.skew_secs) {
        return answer("expired", None);
    }
    let heard = match shared
        .polls
        .turn(hash, shared.clock.monotonic(), POLL_INTERVAL)
    {
        PollTurn::Answer(heard) => heard,
        PollTurn::Ask => match ask_receiver(shared, &hash, &hash_hex).await {
            Ok(heard) => {
                shared.polls.heard(&hash, heard.clone());
                heard
            }
            Err(refusal) => return refusal,
        },
    };
    match heard {
        LastHeard::Open => answer("open", None),
        LastHeard::Paid(preimage) => answer("paid", Some(&preimage)),
        LastHeard::Cancelled => answer("cancelled", None),
    }
}

/// The invoice a poll names, if it is one of this layer's receiver; else the refusal.
fn polled_invoice<F: Facilitator, B: From<Bytes>>(
    shared: &Arc<Shared<F>>,
    headers: &HeaderMap,
) -> Result<DecodedInvoice, Response<B>> {
    let bad = |why: &str| {
        respond::error(
            StatusCode::BAD_REQUEST,
            &format!("X402-Invoice-State: {why}"),
        )
    };
    let mut values = headers.get_all(INVOICE_STATE_HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(bad("one header, the invoice the page offers"));
    };
    if value.len() > MAX_POLLED_INVOICE_BYTES {
        return Err(bad("longer than any invoice of this server"));
    }
    let text = value.to_str().map_err(|_| bad("not a BOLT11 invoice"))?;
    let invoice = strict::decode(text.trim()).map_err(|_| bad("not a BOLT11 invoice"))?;
    if Network::from_currency(&invoice.currency) != Some(shared.network)
        || invoice.description_hash.is_none()
    {
        return Err(not_ours());
    }
    let trusted = match shared.pay_to {
        Some(pinned) => Some(pinned == invoice.payee),
        None => shared.facilitator_state.payee_is_known(&invoice.payee),
    };
    match trusted {
        Some(true) => Ok(invoice),
        Some(false) => Err(not_ours()),
        // A fresh instance whose facilitator has not answered yet: not a verdict.
        None => {
            shared.check_support_in_background();
            let mut response = respond::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "this server does not know its payment receiver's node yet; ask again shortly",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            Err(response)
        }
    }
}

/// 404: an invoice this server's receiver did not mint.
fn not_ours<B: From<Bytes>>() -> Response<B> {
    respond::error(
        StatusCode::NOT_FOUND,
        "not an invoice of this server's payment receiver",
    )
}

/// What the receiver says of the invoice of `hash`, checked; else the refusal.
async fn ask_receiver<F: Facilitator, B: From<Bytes>>(
    shared: &Shared<F>,
    hash: &[u8; 32],
    hash_hex: &str,
) -> Result<LastHeard, Response<B>> {
    let status = match &shared.receiver {
        None => facilitator_invoice_status(&shared.facilitator, hash).await,
        Some(receiver) => receiver.invoice_status(hash).await,
    };
    match status {
        Ok(Some(status)) => {
            if let Err(why) = status.check(hash) {
                tracing::error!(
                    why,
                    payment_hash = hash_hex,
                    "receiver's invoice state unusable"
                );
                return Err(respond::error(
                    StatusCode::BAD_GATEWAY,
                    "the payment receiver reported an unusable invoice state",
                ));
            }
            Ok(match (status.state, status.preimage) {
                (InvoiceState::Paid, Some(preimage)) => LastHeard::Paid(preimage),
                (InvoiceState::Cancelled, _) => LastHeard::Cancelled,
                // `check` allows no other combination with `Paid`.
                (InvoiceState::Open | InvoiceState::Paid, _) => LastHeard::Open,
            })
        }
        Ok(None) => Err(respond::error(
            StatusCode::NOT_FOUND,
            "the payment receiver does not know this invoice",
        )),
        Err(ReceiverError::Unsupported) => Err(respond::error(
            StatusCode::NOT_IMPLEMENTED,
            "this server's payment receiver cannot report invoice states: pay with a browser \
             wallet",
        )),
        Err(err) => {
            tracing::warn!(error = %err, "invoice state lookup failed");
            let status = if err.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            Err(respond::error(
                status,
                "the payment receiver could not be asked; ask again",
            ))
        }
    }
}
