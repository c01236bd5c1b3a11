//! Encoding and decoding of the `X-PAYMENT` and `X-PAYMENT-RESPONSE` header values: base64 of
//! JSON. Encoders write the standard alphabet with padding; decoders also accept unpadded and
//! URL-safe input, and refuse anything over a size limit before decoding it.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::network::Network;
use crate::types::{PaymentPayload, Scheme, SettleResponse, X402_VERSION, reason};

/// The request header carrying the client's [`PaymentPayload`].
pub const X_PAYMENT: &str = "x-payment";

/// The response header carrying the [`SettleResponse`].
pub const X_PAYMENT_RESPONSE: &str = "x-payment-response";

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
    /// The payload names another scheme than `exact` (shown as sent).
    #[error("unsupported scheme {0}: expected exact")]
    UnsupportedScheme(String),
    /// The payload names a network that is not a Lightning network (shown as sent).
    #[error("unsupported network {0}: expected a Lightning network such as lightning-regtest")]
    UnsupportedNetwork(String),
}

impl HeaderError {
    /// The x402 snake_case reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            HeaderError::TooLarge { .. } | HeaderError::NotBase64 | HeaderError::NotJson(_) => {
                reason::INVALID_PAYLOAD
            }
            HeaderError::UnsupportedVersion(_) => reason::INVALID_X402_VERSION,
            HeaderError::UnsupportedScheme(_) => reason::INVALID_SCHEME,
            HeaderError::UnsupportedNetwork(_) => reason::INVALID_NETWORK,
        }
    }
}

/// Encodes `value` as a header value: base64 (standard alphabet, padded) of its JSON.
pub fn encode_header<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_vec(value).map(|json| STANDARD.encode(json))
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

fn decode_base64(value: &[u8], max_len: usize) -> Result<Vec<u8>, HeaderError> {
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

/// The fields that say what kind of payment a payload is, read loosely.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "x402Version")]
    version: Option<Value>,
    scheme: Option<Value>,
    network: Option<Value>,
}

/// For a payload that failed to parse: the first of version, scheme and network that is
/// present and not supported.
fn unsupported_field(json: &[u8]) -> Option<HeaderError> {
    let envelope: Envelope = serde_json::from_slice(json).ok()?;
    if let Some(version) = envelope.version {
        if version.as_u64() != Some(u64::from(X402_VERSION)) {
            return Some(HeaderError::UnsupportedVersion(shown(&version)));
        }
    }
    if let Some(scheme) = envelope.scheme {
        if scheme.as_str() != Some(Scheme::Exact.as_str()) {
            return Some(HeaderError::UnsupportedScheme(shown(&scheme)));
        }
    }
    if let Some(network) = envelope.network {
        if network
            .as_str()
            .and_then(|n| n.parse::<Network>().ok())
            .is_none()
        {
            return Some(HeaderError::UnsupportedNetwork(shown(&network)));
        }
    }
    None
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
    fn oversized_values_are_refused_before_decoding() {
        let value = vec![b'A'; 101];
        assert_eq!(
            decode_header::<String>(&value, 100),
            Err(HeaderError::TooLarge { len: 101, max: 100 })
        );
    }
}
