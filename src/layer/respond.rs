//! The layer's own answers: 402 with fresh requirements, 400 (a request that cannot be bound, a
//! malformed `PAYMENT-SIGNATURE` with its `reason`), a route check's 4xx, 409, 413, 429, 500,
//! 502, 503 (a payee not known yet, with `Retry-After`) and 504, each a JSON body with a
//! human-readable `error` and `Cache-Control: no-store`; and the headers a paid response gets
//! (`X-PAYMENT-RESPONSE` / `PAYMENT-RESPONSE`, `Cache-Control`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::facilitator::FacilitatorError;
use crate::header::{X_PAYMENT_RESPONSE, encode_payment_response_header};
use crate::invoice::RequirementsError;
use crate::layer::Flows;
use crate::lnbtc::binding::BindingError;
use crate::lnbtc::header::{
    PAYMENT_REQUIRED as PAYMENT_REQUIRED_HEADER, PAYMENT_RESPONSE as PAYMENT_RESPONSE_HEADER,
    encode_payment_required, encode_payment_response,
};
use crate::lnbtc::types::{self as lnbtc, ResourceInfo};
use crate::price::check::RequestRejection;
use crate::types::{PaymentRequired, PaymentRequirements, SettleResponse, X402_VERSION};

/// The x402 wording for a request without payment.
pub(crate) const PAYMENT_REQUIRED: &str = "X-PAYMENT header is required";

/// The x402 wording for an `X-PAYMENT` that cannot be used.
pub(crate) const MALFORMED_PAYMENT: &str = "Invalid or malformed payment header";

/// The `X-PAYMENT-RESPONSE` header name as it is listed in `Access-Control-Expose-Headers`.
const EXPOSED_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";

/// The x402 version 2 headers as they are listed in `Access-Control-Expose-Headers`.
const EXPOSED_PAYMENT_RESPONSE_V2: &str = "PAYMENT-RESPONSE";
const EXPOSED_PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";

/// The x402 wording for a request without payment, on a route that takes only `lnbtc`.
pub(crate) const PAYMENT_SIGNATURE_REQUIRED: &str = "PAYMENT-SIGNATURE header is required";

/// What a paid response gets when its handler set no `Cache-Control`: a shared cache must
/// never hand paid content to someone else.
const PAID_CACHE_CONTROL: &str = "private, no-store";

/// A JSON response with `status`, never stored by a cache.
pub(crate) fn json<B: From<Bytes>>(status: StatusCode, body: &impl Serialize) -> Response<B> {
    // Serializing these plain structs cannot fail; an empty body would still carry the status.
    // A challenge's body is most of a kilobyte: one allocation rather than a growing buffer.
    let mut json = Vec::with_capacity(1024);
    let body = match serde_json::to_writer(&mut json, body) {
        Ok(()) => json,
        Err(_) => Vec::new(),
    };
    let mut response = Response::new(B::from(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `{"error": message}` with `status`.
pub(crate) fn error<B: From<Bytes>>(status: StatusCode, message: &str) -> Response<B> {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
    }
    json(status, &ErrorBody { error: message })
}

/// 402 with `accepts` = the fresh `requirements`.
pub(crate) fn payment_required<B: From<Bytes>>(
    error: String,
    requirements: PaymentRequirements,
    payer: Option<String>,
) -> Response<B> {
    let body = PaymentRequired {
        x402_version: X402_VERSION,
        error,
        accepts: vec![requirements],
        payer,
    };
    json(StatusCode::PAYMENT_REQUIRED, &body)
}

/// The `lnbtc` challenge of a 402 (`PAYMENT-REQUIRED`), for `error`: the seed flow's wording
/// for a missing payment becomes the v2 one (a client reading it sends `PAYMENT-SIGNATURE`).
pub(crate) fn lnbtc_challenge(
    error: &str,
    resource: ResourceInfo,
    requirements: lnbtc::PaymentRequirements,
) -> lnbtc::PaymentRequired {
    let v2_error = if error == PAYMENT_REQUIRED {
        PAYMENT_SIGNATURE_REQUIRED
    } else {
        error
    };
    lnbtc::PaymentRequired {
        x402_version: lnbtc::X402_VERSION_2,
        error: Some(v2_error.to_owned()),
        resource,
        accepts: vec![requirements],
        extensions: None,
    }
}

/// A 402 challenge: the seed flow's `PaymentRequired` body (when the route offers it) and the
/// `lnbtc` challenge ([`lnbtc_challenge`]) in `PAYMENT-REQUIRED` (when it offers that), both
/// carrying one invoice. A route offering `lnbtc` alone sends the v2 `PaymentRequired` as the
/// body too.
pub(crate) fn challenge<B: From<Bytes>>(
    error: String,
    v1: Option<PaymentRequirements>,
    required: Option<&lnbtc::PaymentRequired>,
    payer: Option<String>,
) -> Response<B> {
    let mut response = match (v1, required) {
        (Some(requirements), _) => payment_required(error, requirements, payer),
        (None, Some(required)) => json(StatusCode::PAYMENT_REQUIRED, required),
        // A route offers at least one flow; answer as an empty seed-flow challenge otherwise.
        (None, None) => self::error(StatusCode::PAYMENT_REQUIRED, &error),
    };
    if let Some(required) = required {
        // Base64 is always a valid header value.
        if let Ok(value) = HeaderValue::try_from(encode_payment_required(required)) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(PAYMENT_REQUIRED_HEADER), value);
        }
        expose(response.headers_mut(), EXPOSED_PAYMENT_REQUIRED);
    }
    response
}

/// 400 (upstream HTTP transport: "Invalid Payment"): a `PAYMENT-SIGNATURE` that is not a usable
/// x402 version 2 payment for this route. `{"error", "reason"}`, with the vocabulary's
/// `reason`; no fresh invoice, so a client that already paid is not invited to pay again.
pub(crate) fn invalid_payment<B: From<Bytes>>(reason: &str, detail: &str) -> Response<B> {
    #[derive(Serialize)]
    struct InvalidPayment<'a> {
        error: String,
        reason: &'a str,
    }
    json(
        StatusCode::BAD_REQUEST,
        &InvalidPayment {
            error: format!("{MALFORMED_PAYMENT}: {detail}"),
            reason,
        },
    )
}

/// The route's request check refused the request: its status and `{"error"}`; nothing was
/// minted or charged.
pub(crate) fn request_rejected<B: From<Bytes>>(rejection: &RequestRejection) -> Response<B> {
    error(rejection.status(), rejection.message())
}

/// 502: the facilitator's `/supported` lists none of the route's flows, so a 402 could offer
/// nothing payable; nothing was minted.
pub(crate) fn no_flow_served<B: From<Bytes>>(flows: Flows) -> Response<B> {
    error(
        StatusCode::BAD_GATEWAY,
        &format!(
            "the payment facilitator serves none of this route's payment flows ({flows}); \
             payments are not possible until it does"
        ),
    )
}

/// 503 with `Retry-After`: the payment names a payee the layer cannot yet tell is the
/// receiver's (the facilitator could not be asked); not a verdict on the payment.
pub(crate) fn payee_unknown<B: From<Bytes>>(retry_after: Duration) -> Response<B> {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "this server cannot check the payment's payee yet (its payment facilitator did not \
         answer); send the same payment again shortly",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(whole_seconds(retry_after)));
    response
}

/// Whole seconds of `duration`, rounded up, at least one (a `Retry-After`).
fn whole_seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
        .max(1)
}

/// 413: the body of a priced route that reads it (to bind, price or check it) is over the
/// limit; nothing was minted.
pub(crate) fn body_too_large<B: From<Bytes>>(max: usize) -> Response<B> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "request body over {max} bytes: a paid request's body is hashed into its payment, \
             and this server reads at most {max} bytes"
        ),
    )
}

/// 400: the request body could not be read.
pub(crate) fn unreadable_body<B: From<Bytes>>() -> Response<B> {
    error(StatusCode::BAD_REQUEST, "could not read the request body")
}

/// 400: the request cannot be bound to a payment (a malformed or foreign authority, a bound
/// header value `http:1` cannot represent); `error` starts with the scheme's reason.
pub(crate) fn binding_refused<B: From<Bytes>>(err: &BindingError) -> Response<B> {
    error(StatusCode::BAD_REQUEST, &err.to_string())
}

/// Marks a paid `lnbtc` response: `PAYMENT-RESPONSE` (exposed to browsers) and the caching
/// rule of [`mark_paid`].
pub(crate) fn mark_paid_lnbtc(headers: &mut HeaderMap, settlement: &lnbtc::SettleResponse) {
    keep_private(headers);
    add_lnbtc_payment_response(headers, settlement);
}

/// Adds `PAYMENT-RESPONSE` and lists it in `Access-Control-Expose-Headers`.
pub(crate) fn add_lnbtc_payment_response(
    headers: &mut HeaderMap,
    settlement: &lnbtc::SettleResponse,
) {
    // Base64 is always a valid header value.
    if let Ok(value) = HeaderValue::try_from(encode_payment_response(settlement)) {
        headers.insert(HeaderName::from_static(PAYMENT_RESPONSE_HEADER), value);
    }
    expose(headers, EXPOSED_PAYMENT_RESPONSE_V2);
}

/// The `error` of [`invoice_in_flight`].
pub(crate) const IN_FLIGHT: &str = "this invoice is already being processed by another request";

/// 409: another request is processing this invoice.
pub(crate) fn invoice_in_flight<B: From<Bytes>>() -> Response<B> {
    error(StatusCode::CONFLICT, IN_FLIGHT)
}

/// 400: the request names no usable origin for `resource`.
pub(crate) fn bad_host<B: From<Bytes>>(why: &str) -> Response<B> {
    error(StatusCode::BAD_REQUEST, why)
}

/// 429 with `Retry-After`: the invoice-issuance limit is reached; nothing was minted.
pub(crate) fn too_many_invoices<B: From<Bytes>>(retry_after: Duration) -> Response<B> {
    let seconds = whole_seconds(retry_after);
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many payment requests: invoices are rate-limited; retry in {seconds} s"),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// 502, or 504 when the facilitator timed out. The client learns which call failed, not the
/// facilitator's own words (they go to the log).
pub(crate) fn facilitator_failed<B: From<Bytes>>(err: &FacilitatorError) -> Response<B> {
    let (status, message) = facilitator_failure(err);
    error(status, &message)
}

/// The status and `error` of [`facilitator_failed`].
pub(crate) fn facilitator_failure(err: &FacilitatorError) -> (StatusCode, String) {
    let call = err.call();
    match err {
        FacilitatorError::Timeout { .. } => (
            StatusCode::GATEWAY_TIMEOUT,
            format!("payment facilitator timed out ({call})"),
        ),
        FacilitatorError::Unreachable { .. } => (
            StatusCode::BAD_GATEWAY,
            format!("payment facilitator unreachable ({call})"),
        ),
        FacilitatorError::Status { status, .. } => (
            StatusCode::BAD_GATEWAY,
            format!("payment facilitator {call} answered {status}"),
        ),
        FacilitatorError::InvalidReply { .. } => (
            StatusCode::BAD_GATEWAY,
            format!("payment facilitator {call} sent an unusable reply"),
        ),
    }
}

/// 502: `/requirements` answered something that is not what was asked, or not consistent.
pub(crate) fn bad_requirements<B: From<Bytes>>(err: &RequirementsError) -> Response<B> {
    error(
        StatusCode::BAD_GATEWAY,
        &format!("payment facilitator /requirements sent unusable requirements: {err}"),
    )
}

/// 502: `/settle` reported success for another invoice or network, or never finished.
pub(crate) fn bad_settlement<B: From<Bytes>>(why: &str) -> Response<B> {
    error(StatusCode::BAD_GATEWAY, &bad_settlement_reason(why))
}

/// The `error` of [`bad_settlement`].
pub(crate) fn bad_settlement_reason(why: &str) -> String {
    format!("payment facilitator /settle sent an unusable reply: {why}")
}

/// 500: two X402 layers price one request (a price table around the router, and a
/// `charge(..)` on the route, or two charges); the client would be asked to pay twice.
pub(crate) fn priced_twice<B: From<Bytes>>() -> Response<B> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "this route is priced twice (a price table entry and a charge(..) on the route, or two \
         charges): a server configuration error; keep one price",
    )
}

/// 500: a dynamic price callback returned a price that cannot be charged.
pub(crate) fn bad_price<B: From<Bytes>>() -> Response<B> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "this route's price is misconfigured",
    )
}

/// Caching headers a handler may set to decide for itself how its paid response is cached:
/// `Cache-Control`, and the targeted ones a CDN obeys before it (RFC 9213).
const CACHING_HEADERS: [&str; 3] = ["cache-control", "cdn-cache-control", "surrogate-control"];

/// Marks a paid response: `X-PAYMENT-RESPONSE` (listed in `Access-Control-Expose-Headers`),
/// and `Cache-Control: private, no-store` unless the handler set a caching header of its own
/// (then what it chose, CDN caching included, is its business).
pub(crate) fn mark_paid(headers: &mut HeaderMap, settle: &SettleResponse) {
    keep_private(headers);
    add_payment_response(headers, settle);
}

/// `Cache-Control: private, no-store` unless the handler set a caching header of its own.
fn keep_private(headers: &mut HeaderMap) {
    if !CACHING_HEADERS
        .iter()
        .any(|name| headers.contains_key(*name))
    {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(PAID_CACHE_CONTROL));
    }
}

/// Adds `X-PAYMENT-RESPONSE` and lists it in `Access-Control-Expose-Headers`.
pub(crate) fn add_payment_response(headers: &mut HeaderMap, settle: &SettleResponse) {
    let encoded = encode_payment_response_header(settle);
    // Base64 is always a valid header value.
    if let Ok(value) = HeaderValue::try_from(encoded) {
        headers.insert(HeaderName::from_static(X_PAYMENT_RESPONSE), value);
    }
    expose(headers, EXPOSED_PAYMENT_RESPONSE);
}

/// Lists `name` in `Access-Control-Expose-Headers` unless it (or `*`) is there already.
fn expose(headers: &mut HeaderMap, name: &'static str) {
    let exposed = headers
        .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|listed| listed == "*" || listed.eq_ignore_ascii_case(name));
    if !exposed {
        headers.append(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(name),
        );
    }
}
