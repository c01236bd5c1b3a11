//! Request checks: what a priced route refuses before anything is minted or charged.
//!
//! A route's check ([`PriceTag::check_request`](super::PriceTag::check_request)) sees the
//! request head and its whole body (the layer reads it, up to its body limit, and hands the
//! same bytes to the handler) and lets the request on to the payment, or refuses it with a 4xx
//! of its own: no invoice is minted, no payment is taken, `/verify` and `/settle` are not
//! called. It runs on every request the route prices, with a payment or without, so a request
//! it refuses is never charged, in either flow. (A request a dynamic price lets through free
//! goes straight to the handler, unchecked: charging nothing, it has nothing to protect.)
//!
//! Because an `lnbtc` payment binds the exact bytes of the request, a request judged before its
//! 402 is judged the same when it comes back paid: checking it first is what makes "no charge
//! for a rejected body" hold in the upfront flow too. The check must therefore depend only on
//! the request (and not, say, on the time or on a database that may change in between).
//!
//! ```
//! use x402_lightning::price::check::RequestRejection;
//! use x402_lightning::{Price, PriceTag};
//!
//! #[derive(serde::Deserialize)]
//! struct Job {
//!     prompt: String,
//! }
//!
//! // Refused as axum's `Json<Job>` would refuse it (415, 400 or 422), before any invoice.
//! let tag = PriceTag::fixed(Price::sats(5_000)).require_json::<Job>();
//!
//! // Or any rule of the route's own, on the head and the body.
//! let tag = PriceTag::fixed(Price::sats(10)).check_request(
//!     |_head: &http::request::Parts, body: &bytes::Bytes| {
//!         if body.len() > 4096 {
//!             return Err(RequestRejection::new(
//!                 http::StatusCode::UNPROCESSABLE_ENTITY,
//!                 "a prompt is at most 4096 bytes",
//!             ));
//!         }
//!         Ok(())
//!     },
//! );
//! # let _ = tag;
//! ```

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use serde::de::DeserializeOwned;

/// A request a route refuses before charging: the 4xx status and the `error` of its JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRejection {
    status: StatusCode,
    message: String,
}

impl RequestRejection {
    /// A refusal with `status` and `message` (the body is `{"error": message}`). A status that
    /// is not a 4xx becomes 400: a request check speaks of the request, and a 402 here would
    /// read as a payment answer.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let status = if status.is_client_error() && status != StatusCode::PAYMENT_REQUIRED {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            message: message.into(),
        }
    }

    /// The status of the refusal (a 4xx other than 402).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `error` of the refusal's JSON body.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RequestRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

/// A route's rule for the requests it takes before any payment: the head (method, URI, headers,
/// extensions; the payment headers removed) and the whole body.
///
/// Implemented for every `Fn(&Parts, &Bytes) -> Result<(), RequestRejection>` closure; [`json`]
/// is the check of a JSON route.
pub trait RequestCheck: Send + Sync + 'static {
    /// `Ok` to go on to the payment; `Err` is the answer, with nothing minted or charged.
    fn check(&self, head: &Parts, body: &Bytes) -> Result<(), RequestRejection>;
}

impl<F> RequestCheck for F
where
    F: Fn(&Parts, &Bytes) -> Result<(), RequestRejection> + Send + Sync + 'static,
{
    fn check(&self, head: &Parts, body: &Bytes) -> Result<(), RequestRejection> {
        self(head, body)
    }
}

/// The check of a route whose handler reads its body with axum's `Json<T>`: the body must be
/// JSON (`Content-Type: application/json`, or another `+json` type) that deserializes into
/// `T`. Refused as that extractor refuses: 415 without a JSON content type, 400 for a body
/// that is not JSON, 422 for JSON of another shape.
pub fn json<T: DeserializeOwned + 'static>() -> JsonBody<T> {
    JsonBody(PhantomData)
}

/// The check [`json`] returns.
pub struct JsonBody<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for JsonBody<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonBody<{}>", std::any::type_name::<T>())
    }
}

impl<T: DeserializeOwned + 'static> RequestCheck for JsonBody<T> {
    fn check(&self, head: &Parts, body: &Bytes) -> Result<(), RequestRejection> {
        if !has_json_content_type(head) {
            return Err(RequestRejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`",
            ));
        }
        match serde_json::from_slice::<T>(body) {
            Ok(_) => Ok(()),
            Err(err) if err.is_data() => Err(RequestRejection::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Failed to deserialize the JSON body into the target type: {err}"),
            )),
            Err(err) => Err(RequestRejection::new(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse the request body as JSON: {err}"),
            )),
        }
    }
}

/// Whether the request says its body is JSON: `application/json` or `application/<x>+json`,
/// parameters (`; charset=utf-8`) aside, in any case.
fn has_json_content_type(head: &Parts) -> bool {
    let Some(value) = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code, reason = "read by serde only")]
    struct Job {
        prompt: String,
    }

    fn head(content_type: Option<&str>) -> Parts {
        let mut request = http::Request::post("/ai/infer");
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn judge(content_type: Option<&str>, body: &'static str) -> Result<(), StatusCode> {
        json::<Job>()
            .check(&head(content_type), &Bytes::from_static(body.as_bytes()))
            .map_err(|rejection| rejection.status())
    }

    #[test]
    fn a_json_check_refuses_as_axums_json_extractor_does() {
        let json = Some("application/json");
        assert_eq!(judge(json, r#"{"prompt":"hi"}"#), Ok(()));
        assert_eq!(
            judge(
                Some("Application/JSON; charset=utf-8"),
                r#"{"prompt":"hi"}"#
            ),
            Ok(())
        );
        assert_eq!(
            judge(Some("application/vnd.api+json"), r#"{"prompt":"hi"}"#),
            Ok(())
        );
        assert_eq!(
            judge(None, r#"{"prompt":"hi"}"#),
            Err(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            judge(Some("text/plain"), r#"{"prompt":"hi"}"#),
            Err(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(judge(json, "not json"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(judge(json, ""), Err(StatusCode::BAD_REQUEST));
        assert_eq!(
            judge(json, r#"{"prompt":42}"#),
            Err(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(judge(json, r#"{}"#), Err(StatusCode::UNPROCESSABLE_ENTITY));
    }

    #[test]
    fn a_rejection_is_a_4xx_other_than_402() {
        for status in [
            StatusCode::OK,
            StatusCode::PAYMENT_REQUIRED,
            StatusCode::BAD_GATEWAY,
        ] {
            assert_eq!(
                RequestRejection::new(status, "no").status(),
                StatusCode::BAD_REQUEST
            );
        }
        let conflict = RequestRejection::new(StatusCode::CONFLICT, "taken");
        assert_eq!(
            (conflict.status(), conflict.message()),
            (StatusCode::CONFLICT, "taken")
        );
    }
}
