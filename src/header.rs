//! Encoding and decoding of the `X-PAYMENT` and `X-PAYMENT-RESPONSE` header values: base64 of
//! JSON. Encoders write the standard alphabet with padding; decoders also accept unpadded and
//! URL-safe input, and refuse anything over a size limit before decoding it.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::{PaymentPayload, SettleResponse, X402_VERSION};

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
    /// The payload speaks another x402 version.
    #[error("unsupported x402Version {0}: expected {X402_VERSION}")]
    UnsupportedVersion(u32),
}

/// Encodes `value` as a header value: base64 (standard alphabet, padded) of its JSON.
pub fn encode_header<T: Serialize>(value: &T) -> String {
    // Serializing these plain data types to JSON cannot fail: no maps with non-string keys.
    let json = serde_json::to_vec(value).unwrap_or_default();
    STANDARD.encode(json)
}

/// Decodes an `X-PAYMENT` value into a [`PaymentPayload`] of the supported version.
///
/// Scheme and network are checked by type (only `exact` and the Lightning networks parse);
/// whether the network is the one a route wants is the caller's business.
pub fn decode_payment_header(value: &[u8], max_len: usize) -> Result<PaymentPayload, HeaderError> {
    let payload: PaymentPayload = decode_header(value, max_len)?;
    if payload.x402_version != X402_VERSION {
        return Err(HeaderError::UnsupportedVersion(payload.x402_version));
    }
    Ok(payload)
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
    if value.len() > max_len {
        return Err(HeaderError::TooLarge {
            len: value.len(),
            max: max_len,
        });
    }
    let value = value.trim_ascii();
    let json = STANDARD
        .decode(value)
        .or_else(|_| URL_SAFE.decode(value))
        .map_err(|_| HeaderError::NotBase64)?;
    serde_json::from_slice(&json).map_err(|err| HeaderError::NotJson(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_values_use_the_padded_standard_alphabet() {
        // The JSON of this string is five bytes, so its base64 needs one padding character.
        let encoded = encode_header(&"\u{fffb}");
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
