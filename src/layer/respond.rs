//! The layer's own answers: 402 with fresh requirements, 409, 500, 502 and 504, each a JSON
//! body with a human-readable `error`; and the `X-PAYMENT-RESPONSE` header.

use bytes::Bytes;
use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::body::X402Body;
use crate::facilitator::FacilitatorError;
use crate::header::{X_PAYMENT_RESPONSE, encode_payment_response_header};
use crate::invoice::RequirementsError;
use crate::types::{PaymentRequired, PaymentRequirements, SettleResponse, X402_VERSION};

/// The x402 wording for a request without payment.
pub(crate) const PAYMENT_REQUIRED: &str = "X-PAYMENT header is required";

/// The x402 wording for an `X-PAYMENT` that cannot be used.
pub(crate) const MALFORMED_PAYMENT: &str = "Invalid or malformed payment header";

/// The `X-PAYMENT-RESPONSE` header name as it is listed in `Access-Control-Expose-Headers`.
const EXPOSED_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";

/// A JSON response with `status`.
fn json<B>(status: StatusCode, body: &impl Serialize) -> Response<X402Body<B>> {
    // Serializing these plain structs cannot fail; an empty body would still carry the status.
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(X402Body::full(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"error": message}` with `status`.
pub(crate) fn error<B>(status: StatusCode, message: &str) -> Response<X402Body<B>> {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
    }
    json(status, &ErrorBody { error: message })
}

/// 402 with `accepts` = the fresh `requirements`.
pub(crate) fn payment_required<B>(
    error: String,
    requirements: PaymentRequirements,
    payer: Option<String>,
) -> Response<X402Body<B>> {
    let body = PaymentRequired {
        x402_version: X402_VERSION,
        error,
        accepts: vec![requirements],
        payer,
    };
    json(StatusCode::PAYMENT_REQUIRED, &body)
}

/// 409: another request is processing this invoice.
pub(crate) fn invoice_in_flight<B>() -> Response<X402Body<B>> {
    error(
        StatusCode::CONFLICT,
        "this invoice is already being processed by another request",
    )
}

/// 502, or 504 when the facilitator timed out. The client learns which call failed, not the
/// facilitator's own words (they go to the log).
pub(crate) fn facilitator_failed<B>(err: &FacilitatorError) -> Response<X402Body<B>> {
    let call = err.call();
    let (status, message) = match err {
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
    };
    error(status, &message)
}

/// 502: `/requirements` answered something that is not what was asked, or not consistent.
pub(crate) fn bad_requirements<B>(err: &RequirementsError) -> Response<X402Body<B>> {
    error(
        StatusCode::BAD_GATEWAY,
        &format!("payment facilitator /requirements sent unusable requirements: {err}"),
    )
}

/// 502: `/settle` reported success for another invoice or network.
pub(crate) fn bad_settlement<B>(why: &str) -> Response<X402Body<B>> {
    error(
        StatusCode::BAD_GATEWAY,
        &format!("payment facilitator /settle sent an unusable reply: {why}"),
    )
}

/// 500: a dynamic price callback returned a price that cannot be charged.
pub(crate) fn bad_price<B>() -> Response<X402Body<B>> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "this route's price is misconfigured",
    )
}

/// Adds `X-PAYMENT-RESPONSE` and lists it in `Access-Control-Expose-Headers`.
pub(crate) fn add_payment_response(headers: &mut HeaderMap, settle: &SettleResponse) {
    let encoded = encode_payment_response_header(settle);
    // Base64 is always a valid header value.
    if let Ok(value) = HeaderValue::try_from(encoded) {
        headers.insert(HeaderName::from_static(X_PAYMENT_RESPONSE), value);
    }
    let exposed = headers
        .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|name| name == "*" || name.eq_ignore_ascii_case(X_PAYMENT_RESPONSE));
    if !exposed {
        headers.append(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_PAYMENT_RESPONSE),
        );
    }
}
