//! Encoding and decoding of the `X-PAYMENT` and `X-PAYMENT-RESPONSE` header values: base64 of
//! JSON. Encoders write the standard alphabet with padding; decoders also accept unpadded and
//! URL-safe input, and refuse anything over a size limit before decoding it.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderMap, HeaderName};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::network::Network;
use crate::types::{PaymentPayload, Scheme, SettleResponse, X402_VERSION, reason};

/// The request header carrying the client's [`PaymentPayload`].
pub const X_PAYMENT: &str = "x-payment";

/// The response header carrying the [`SettleResponse`].
pub const X_PAYMENT_RESPONSE: &str = "x-payment-response";

/// The request header of x402 version 2 carrying a payment proof.
pub const PAYMENT_SIGNATURE: &str = "payment-signature";

/// The request headers that carry a payment (`X-PAYMENT`, `PAYMENT-SIGNATURE`): what a CORS
/// configuration must allow for a browser to pay from another origin (with `content-type` for
/// a JSON body), e.g. tower-http's `CorsLayer::allow_headers`.
pub const PAYMENT_REQUEST_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static(X_PAYMENT),
    HeaderName::from_static(PAYMENT_SIGNATURE),
];

/// The response headers of a payment (`PAYMENT-REQUIRED`, `PAYMENT-RESPONSE`,
/// `X-PAYMENT-RESPONSE`): what a CORS configuration must expose for a browser's script to read
/// them, e.g. tower-http's `CorsLayer::expose_headers`. The layer lists each in
/// `Access-Control-Expose-Headers` itself; an outer `CorsLayer` that sets its own list replaces
/// the layer's, so give it these.
pub const PAYMENT_RESPONSE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static(crate::lnbtc::header::PAYMENT_REQUIRED),
    HeaderName::from_static(crate::lnbtc::header::PAYMENT_RESPONSE),
    HeaderName::from_static(X_PAYMENT_RESPONSE),
];

static X_PAYMENT_NAME: HeaderName = HeaderName::from_static(X_PAYMENT);
static PAYMENT_SIGNATURE_NAME: HeaderName = HeaderName::from_static(PAYMENT_SIGNATURE);

/// Removes every payment header (`X-PAYMENT`, `PAYMENT-SIGNATURE`) from `headers`, so a client's
/// authorization or proof never reaches a handler.
#[inline]
pub(crate) fn strip_payment_headers(headers: &mut HeaderMap) {
    if carries_payment(headers) {
        headers.remove(&X_PAYMENT_NAME);
        headers.remove(&PAYMENT_SIGNATURE_NAME);
    }
}

/// Whether `headers` hold a payment header (`X-PAYMENT`, `PAYMENT-SIGNATURE`). Most requests
/// carry neither: comparing the few names is cheaper than two hash lookups.
#[inline]
pub(crate) fn carries_payment(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| matches!(name.as_str(), X_PAYMENT | PAYMENT_SIGNATURE))
}

/// A payment header of a request, taken out of its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TakenPayment {
    /// No such header.
    Missing,
    /// Exactly one.
    One(http::HeaderValue),
    /// More than one: ambiguous, refused.
    Several,
}

/// Takes the payment headers (`X-PAYMENT`, `PAYMENT-SIGNATURE`) out of `headers`.
pub(crate) fn take_payment_headers(headers: &mut HeaderMap) -> (TakenPayment, TakenPayment) {
    (
        take_one(headers, &X_PAYMENT_NAME),
        take_one(headers, &PAYMENT_SIGNATURE_NAME),
    )
}

/// Takes every `name` header out of `headers`.
fn take_one(headers: &mut HeaderMap, name: &HeaderName) -> TakenPayment {
    match headers.entry(name) {
        http::header::Entry::Vacant(_) => TakenPayment::Missing,
        http::header::Entry::Occupied(entry) => {
            let (_, mut values) = entry.remove_entry_mult();
            match (values.next(), values.next()) {
                (Some(value), None) => TakenPayment::One(value),
                _ => TakenPayment::Several,
            }
        }
    }
}

/// The default limit on the size of an encoded header value: 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;

const INDIFFERENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(true)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, INDIFFERENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, INDIFFERENT);

/// Why a header value could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The value is larger than the limit; it was not decoded.
    #[error("payment header is {len} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// The size of the value.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is not base64 (standard or URL-safe, padded or not).
    #[error("payment header is not valid base64")]
    NotBase64,
    /// The decoded bytes are not the expected JSON.
    #[error("payment header is not a valid payment JSON: {0}")]
    NotJson(String),
    /// The payload speaks another x402 version (shown as sent).
    #[error("unsupported x402Version {0}: expected {X402_VERSION}")]
    UnsupportedVersion(String),
    /// A `PAYMENT-SIGNATURE` payload that is not x402 version 2 (shown as sent).
    #[error("unsupported x402Version {0}: PAYMENT-SIGNATURE carries x402 version 2")]
    NotVersion2(String),
    /// The payload names another scheme than `exact` (shown as sent).
    #[error("unsupported scheme {0}: expected exact")]
    UnsupportedScheme(String),
    /// The payload names a network that is not a Lightning network (shown as sent).
    #[error("unsupported network {0}: expected a Lightning network such as lightning-regtest")]
    UnsupportedNetwork(String),
    /// A known field has the wrong JSON type.
    #[error("payment field {field} must be {expected}, not {found}")]
    WrongType {
        /// The field, as a path (`x402Version`, `payload.invoice`).
        field: &'static str,
        /// The JSON type it must have.
        expected: &'static str,
        /// The JSON type it has.
        found: &'static str,
    },
}

impl HeaderError {
    /// The x402 snake_case reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            HeaderError::TooLarge { .. }
            | HeaderError::NotBase64
            | HeaderError::NotJson(_)
            | HeaderError::WrongType { .. } => reason::INVALID_PAYLOAD,
            HeaderError::UnsupportedVersion(_) | HeaderError::NotVersion2(_) => {
                reason::INVALID_X402_VERSION
            }
            HeaderError::UnsupportedScheme(_) => reason::INVALID_SCHEME,
            HeaderError::UnsupportedNetwork(_) => reason::INVALID_NETWORK,
        }
    }
}

/// Encodes `value` as a header value: base64 (standard alphabet, padded) of its JSON.
pub fn encode_header<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    // A challenge is about a kilobyte: one allocation rather than a growing buffer.
    let mut json = Vec::with_capacity(1024);
    serde_json::to_writer(&mut json, value)?;
    Ok(STANDARD.encode(json))
}

/// Encodes an `X-PAYMENT` value.
pub fn encode_payment_header(payment: &PaymentPayload) -> String {
    // Cannot fail: the type has string keys only and no fallible `Serialize`.
    encode_header(payment).unwrap_or_default()
}

/// Encodes an `X-PAYMENT-RESPONSE` value.
pub fn encode_payment_response_header(settle: &SettleResponse) -> String {
    // Cannot fail: the type has string keys only and no fallible `Serialize`.
    encode_header(settle).unwrap_or_default()
}

/// Decodes an `X-PAYMENT` value into a [`PaymentPayload`] of the supported version.
///
/// A payload of another version, scheme or network gets its own error (and x402 reason), so a
/// client learns which field is wrong; whether the network is the one a route wants is the
/// caller's business.
pub fn decode_payment_header(value: &[u8], max_len: usize) -> Result<PaymentPayload, HeaderError> {
    let json = decode_base64(value, max_len)?;
    match serde_json::from_slice::<PaymentPayload>(&json) {
        Ok(payload) if payload.x402_version == X402_VERSION => Ok(payload),
        Ok(payload) => Err(HeaderError::UnsupportedVersion(
            payload.x402_version.to_string(),
        )),
        Err(err) => Err(unsupported_field(&json).unwrap_or(HeaderError::NotJson(err.to_string()))),
    }
}

/// Decodes an `X-PAYMENT-RESPONSE` value into a [`SettleResponse`].
pub fn decode_payment_response_header(
    value: &[u8],
    max_len: usize,
) -> Result<SettleResponse, HeaderError> {
    decode_header(value, max_len)
}

/// Decodes a base64 JSON header value of at most `max_len` bytes into `T`.
pub fn decode_header<T: DeserializeOwned>(value: &[u8], max_len: usize) -> Result<T, HeaderError> {
    let json = decode_base64(value, max_len)?;
    serde_json::from_slice(&json).map_err(|err| HeaderError::NotJson(err.to_string()))
}

pub(crate) fn decode_base64(value: &[u8], max_len: usize) -> Result<Vec<u8>, HeaderError> {
    if value.len() > max_len {
        return Err(HeaderError::TooLarge {
            len: value.len(),
            max: max_len,
        });
    }
    let value = value.trim_ascii();
    STANDARD
        .decode(value)
        .or_else(|_| URL_SAFE.decode(value))
        .map_err(|_| HeaderError::NotBase64)
}

/// For a payload that failed to parse, the first problem of its known fields in this order:
/// `x402Version` (type, then value), `scheme`, `network`, then the types of `payload` and its
/// `invoice`, `signature` and `from`. `None` when they are all fine (serde's message then says
/// what is wrong).
fn unsupported_field(json: &[u8]) -> Option<HeaderError> {
    let Value::Object(envelope) = serde_json::from_slice(json).ok()? else {
        return None;
    };
    if let Some(version) = envelope.get("x402Version") {
        if !(version.is_u64() || version.is_i64()) {
            return Some(wrong_type("x402Version", "an integer", version));
        }
        if version.as_u64() != Some(u64::from(X402_VERSION)) {
            return Some(HeaderError::UnsupportedVersion(shown(version)));
        }
    }
    if let Some(scheme) = envelope.get("scheme") {
        match scheme.as_str() {
            None => return Some(wrong_type("scheme", "a string", scheme)),
            Some(name) if name != Scheme::Exact.as_str() => {
                return Some(HeaderError::UnsupportedScheme(shown(scheme)));
            }
            Some(_) => {}
        }
    }
    if let Some(network) = envelope.get("network") {
        match network.as_str() {
            None => return Some(wrong_type("network", "a string", network)),
            Some(name) if name.parse::<Network>().is_err() => {
                return Some(HeaderError::UnsupportedNetwork(shown(network)));
            }
            Some(_) => {}
        }
    }
    let payload = envelope.get("payload")?;
    let Value::Object(payload) = payload else {
        return Some(wrong_type("payload", "an object", payload));
    };
    [
        ("payload.invoice", "invoice"),
        ("payload.signature", "signature"),
        ("payload.from", "from"),
    ]
    .into_iter()
    .find_map(|(field, name)| {
        let value = payload.get(name)?;
        (!value.is_string()).then(|| wrong_type(field, "a string", value))
    })
}

fn wrong_type(field: &'static str, expected: &'static str, value: &Value) -> HeaderError {
    HeaderError::WrongType {
        field,
        expected,
        found: json_type(value),
    }
}

/// The JSON type of `value`, as an error message names it.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_f64() => "a number that is not a plain integer",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as sent, cut short: it ends up in an error message.
fn shown(value: &Value) -> String {
    const MAX_CHARS: usize = 64;
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_values_use_the_padded_standard_alphabet() {
        // The JSON of this string is five bytes, so its base64 needs one padding character.
        let encoded = encode_header(&"\u{fffb}").unwrap();
        assert!(encoded.ends_with('='), "{encoded}");
        assert_eq!(
            decode_header::<String>(encoded.as_bytes(), 64),
            Ok("\u{fffb}".into())
        );
    }

    #[test]
    fn decoders_accept_unpadded_and_url_safe_values() {
        let json = br#""??>>""#; // bytes that need + and / in the standard alphabet
        for engine in [&STANDARD, &URL_SAFE] {
            let padded = engine.encode(json);
            let unpadded = padded.trim_end_matches('=').to_owned();
            for value in [padded, unpadded] {
                assert_eq!(
                    decode_header::<String>(value.as_bytes(), 64),
                    Ok("??>>".into()),
                    "{value}"
                );
            }
        }
    }

    #[test]
    fn a_known_field_of_the_wrong_type_is_named_with_both_types() {
        let cases = [
            (
                r#"{"x402Version":"1"}"#,
                "x402Version",
                "an integer",
                "a string",
            ),
            (
                r#"{"x402Version":1.0}"#,
                "x402Version",
                "an integer",
                "a number that is not a plain integer",
            ),
            (
                r#"{"x402Version":null}"#,
                "x402Version",
                "an integer",
                "null",
            ),
            (
                r#"{"x402Version":1,"scheme":["exact"]}"#,
                "scheme",
                "a string",
                "an array",
            ),
            (
                r#"{"x402Version":1,"network":true}"#,
                "network",
                "a string",
                "a boolean",
            ),
            (
                r#"{"x402Version":1,"payload":"lnbcrt1"}"#,
                "payload",
                "an object",
                "a string",
            ),
            (
                r#"{"x402Version":1,"payload":{"invoice":"i","signature":{},"from":"f"}}"#,
                "payload.signature",
                "a string",
                "an object",
            ),
            (
                r#"{"x402Version":1,"payload":{"invoice":"i","signature":"s","from":7}}"#,
                "payload.from",
                "a string",
                "an integer",
            ),
        ];
        for (json, field, expected, found) in cases {
            let value = STANDARD.encode(json);
            let err = decode_payment_header(value.as_bytes(), 1024).unwrap_err();
            assert_eq!(
                err,
                HeaderError::WrongType {
                    field,
                    expected,
                    found
                },
                "{json}"
            );
            assert_eq!(err.reason(), reason::INVALID_PAYLOAD);
            assert_eq!(
                err.to_string(),
                format!("payment field {field} must be {expected}, not {found}")
            );
        }
    }

    #[test]
    fn a_number_of_the_wrong_value_is_an_unsupported_version_not_a_type_error() {
        for (json, shown) in [
            (r#"{"x402Version":2}"#, "2"),
            (r#"{"x402Version":-1}"#, "-1"),
        ] {
            let value = STANDARD.encode(json);
            let err = decode_payment_header(value.as_bytes(), 1024).unwrap_err();
            assert_eq!(err, HeaderError::UnsupportedVersion(shown.into()), "{json}");
            assert_eq!(err.reason(), reason::INVALID_X402_VERSION);
        }
    }

    #[test]
    fn oversized_values_are_refused_before_decoding() {
        let value = vec![b'A'; 101];
        assert_eq!(
            decode_header::<String>(&value, 100),
            Err(HeaderError::TooLarge { len: 101, max: 100 })
        );
    }
}
