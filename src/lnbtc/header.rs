//! The x402 version 2 HTTP headers (upstream `transports-v2/http.md`): base64 (standard
//! alphabet, padded) of JSON. Decoders also accept unpadded and URL-safe input, and refuse
//! anything over a size limit before decoding it.

use serde_json::Value;

use super::types::{PaymentPayload, PaymentRequired, SettleResponse, X402_VERSION_2};
use crate::header::{HeaderError, decode_base64, decode_header, encode_header};

/// The response header of a 402 carrying the [`PaymentRequired`] challenge.
pub const PAYMENT_REQUIRED: &str = "payment-required";
/// The request header carrying the client's [`PaymentPayload`].
pub const PAYMENT_SIGNATURE: &str = crate::header::PAYMENT_SIGNATURE;
/// The response header carrying the [`SettleResponse`].
pub const PAYMENT_RESPONSE: &str = "payment-response";

/// Encodes a `PAYMENT-REQUIRED` value.
pub fn encode_payment_required(required: &PaymentRequired) -> String {
    // Cannot fail: string keys only, no fallible `Serialize`.
    encode_header(required).unwrap_or_default()
}

/// Decodes a `PAYMENT-REQUIRED` value of at most `max_len` bytes.
pub fn decode_payment_required(
    value: &[u8],
    max_len: usize,
) -> Result<PaymentRequired, HeaderError> {
    decode_header(value, max_len)
}

/// Encodes a `PAYMENT-SIGNATURE` value.
pub fn encode_payment_signature(payment: &PaymentPayload) -> String {
    // Cannot fail: string keys only, no fallible `Serialize`.
    encode_header(payment).unwrap_or_default()
}

/// Decodes a `PAYMENT-SIGNATURE` value of at most `max_len` bytes into the JSON object the
/// client sent, checking only that it is an object with `x402Version: 2`. The value is kept as
/// sent: it goes to `/settle` untouched, and the scheme's checks judge its members.
pub fn decode_payment_signature(value: &[u8], max_len: usize) -> Result<Value, HeaderError> {
    let json = decode_base64(value, max_len)?;
    let payment: Value =
        serde_json::from_slice(&json).map_err(|err| HeaderError::NotJson(err.to_string()))?;
    let Some(object) = payment.as_object() else {
        return Err(HeaderError::NotJson("expected a JSON object".to_owned()));
    };
    match object.get("x402Version") {
        Some(version) if version.as_u64() == Some(u64::from(X402_VERSION_2)) => Ok(payment),
        Some(version) => Err(HeaderError::NotVersion2(version.to_string())),
        None => Err(HeaderError::NotVersion2("(absent)".to_owned())),
    }
}

/// Encodes a `PAYMENT-RESPONSE` value.
pub fn encode_payment_response(settlement: &SettleResponse) -> String {
    // Cannot fail: string keys only, no fallible `Serialize`.
    encode_header(settlement).unwrap_or_default()
}

/// Decodes a `PAYMENT-RESPONSE` value of at most `max_len` bytes.
pub fn decode_payment_response(
    value: &[u8],
    max_len: usize,
) -> Result<SettleResponse, HeaderError> {
    decode_header(value, max_len)
}
