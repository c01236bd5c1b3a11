//! Request binding (upstream `scheme_exact_lnbtc.md`, "Request Binding"): the request hash that
//! an invoice's description hash commits to, for the `http:1` and `mcp:1` profiles, and the
//! HTTP server adapter's origin rules.
//!
//! `requestHash = SHA-256(UTF8(JCS(binding)))`, where `binding` is the profile's object built
//! from the actual request. Every failure is a [`BindingError`] whose
//! [`reason`](BindingError::reason) is `invalid_exact_lnbtc_request_binding` or
//! `invalid_exact_lnbtc_request_mismatch`.
//!
//! ```
//! use x402_lightning::lnbtc::binding::{BoundHeaders, http_binding};
//!
//! let binding = http_binding(
//!     "GET",
//!     "https://api.example.com/article/A",
//!     b"",
//!     &BoundHeaders::default(),
//!     &[],
//! )?;
//! assert_eq!(
//!     binding.request_hash.to_hex(),
//!     "0d6623f775e025501fa7f0a30b54da25aad62b6ccfe35c85da38016711e6c018",
//! );
//! # Ok::<(), x402_lightning::lnbtc::binding::BindingError>(())
//! ```
//!
//! Choices where the upstream vectors leave a question open:
//!
//! - `http-port-zero`: a URL naming port 0 is refused (`request_binding`).
//! - `http-adapter-origin-policy`: a request whose public authority is not the configured one
//!   is refused with `request_mismatch`; a request carrying no authority at all binds the
//!   configured origin with its target.
//! - `mcp-integer-range`: an integral number of magnitude above 2^53 − 1 in the arguments or
//!   a bound metadata value is refused (`request_binding`), whatever its spelling.

mod http;
mod mcp;
mod origin;
mod uri;

use std::fmt;

use bitcoin::hashes::{Hash as _, HashEngine as _, sha256};
use serde_json::Value;

pub use self::http::{BoundHeaders, http_binding};
pub use self::mcp::mcp_binding;
pub use self::origin::{PublicOrigin, server_http_binding};
use super::reason;

/// The HTTP profile.
pub const HTTP_PROFILE: &str = "http:1";
/// The MCP `tools/call` profile.
pub const MCP_PROFILE: &str = "mcp:1";

/// A request hash: SHA-256 of the canonical description bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestHash(pub [u8; 32]);

impl RequestHash {
    /// Parses 64 lowercase hex characters (nothing else is a valid `extra.requestHash`).
    pub fn from_hex(hex: &str) -> Option<Self> {
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            }
        }
        let digits = hex.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(bytes))
    }

    /// The 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        super::invoice::encode_lower_hex(&self.0)
    }

    /// SHA-256 of `bytes`.
    fn of(bytes: &[u8]) -> Self {
        Self(sha256::Hash::hash(bytes).to_byte_array())
    }
}

impl fmt::Debug for RequestHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestHash({})", self.to_hex())
    }
}

impl fmt::Display for RequestHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A computed binding: the canonical description (the JCS text that is hashed) and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The canonical description, UTF-8 JCS of the binding object.
    pub description: String,
    /// SHA-256 of `description`.
    pub request_hash: RequestHash,
}

impl Binding {
    /// Canonicalizes `object` (built here, so JCS cannot meet a non-finite number or a
    /// duplicate member; an error is still an error, never a panic).
    fn of(object: &Value) -> Result<Self, BindingError> {
        let description = serde_json_canonicalizer::to_string(object)
            .map_err(|err| BindingError::binding(format!("cannot canonicalize: {err}")))?;
        Ok(Self::of_canonical(description))
    }

    /// The binding whose canonical description is `description` (JCS text written directly).
    fn of_canonical(description: String) -> Self {
        let request_hash = RequestHash::of(description.as_bytes());
        Self {
            description,
            request_hash,
        }
    }
}

/// Why a request cannot be bound.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct BindingError {
    reason: &'static str,
    detail: String,
}

impl BindingError {
    /// `invalid_exact_lnbtc_request_binding` or `invalid_exact_lnbtc_request_mismatch`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// What was wrong, for logs.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// A missing, malformed or unsupported binding input (`request_binding`).
    pub(crate) fn binding(detail: impl Into<String>) -> Self {
        Self {
            reason: reason::REQUEST_BINDING,
            detail: detail.into(),
        }
    }

    /// A well-formed input that differs from what is configured (`request_mismatch`).
    pub(crate) fn mismatch(detail: impl Into<String>) -> Self {
        Self {
            reason: reason::REQUEST_MISMATCH,
            detail: detail.into(),
        }
    }
}

/// Checks the syntax of `requestBindingParams` for `profile` (exactly the profile's members,
/// well formed); an unknown profile is an error too.
pub fn validate_params(profile: &str, params: &Value) -> Result<(), BindingError> {
    match profile {
        HTTP_PROFILE => BoundHeaders::from_params(params).map(drop),
        MCP_PROFILE => mcp::check_params(params),
        other => Err(BindingError::binding(format!(
            "unsupported binding profile {other:?}"
        ))),
    }
}

/// The domain tag of `http:1`.
const HTTP_DOMAIN: &str = "x402:exact:lnbtc:bolt11:http:1";
/// The domain tag of `mcp:1`.
const MCP_DOMAIN: &str = "x402:exact:lnbtc:bolt11:mcp:1";

/// `valueHash` of a bound header or metadata member: SHA-256(0x01 || bytes) when present,
/// SHA-256(0x00) when absent, as 64 lowercase hex characters.
fn value_hash(value: Option<&[u8]>) -> String {
    let mut engine = sha256::Hash::engine();
    match value {
        Some(bytes) => {
            engine.input(&[0x01]);
            engine.input(bytes);
        }
        None => engine.input(&[0x00]),
    }
    super::invoice::encode_lower_hex(&sha256::Hash::from_engine(engine).to_byte_array())
}

/// The members of a parameter object, refusing anything but an object with exactly `names`.
fn exact_members<'a>(
    params: &'a Value,
    profile: &str,
    names: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, BindingError> {
    let Some(members) = params.as_object() else {
        return Err(BindingError::binding(format!(
            "{profile} parameters are not an object"
        )));
    };
    if let Some(unknown) = members.keys().find(|key| !names.contains(&key.as_str())) {
        return Err(BindingError::binding(format!(
            "{profile} parameters hold an unknown member {unknown:?}"
        )));
    }
    if let Some(missing) = names.iter().find(|name| !members.contains_key(**name)) {
        return Err(BindingError::binding(format!(
            "{profile} parameters lack {missing:?}"
        )));
    }
    Ok(members)
}

/// A JSON array of strings, or a `request_binding` error naming `what`.
fn string_array<'a>(value: &'a Value, what: &str) -> Result<Vec<&'a str>, BindingError> {
    let Some(items) = value.as_array() else {
        return Err(BindingError::binding(format!("{what} is not an array")));
    };
    items
        .iter()
        .map(|item| {
            item.as_str()
                .ok_or_else(|| BindingError::binding(format!("{what} holds a non-string")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn request_hash_hex_round_trips_and_refuses_uppercase() {
        let hex = "0d6623f775e025501fa7f0a30b54da25aad62b6ccfe35c85da38016711e6c018";
        let hash = RequestHash::from_hex(hex);
        assert_eq!(hash.map(|hash| hash.to_hex()).as_deref(), Some(hex));
        assert_eq!(RequestHash::from_hex(&hex.to_uppercase()), None);
        assert_eq!(RequestHash::from_hex(&hex[..62]), None);
        assert_eq!(RequestHash::from_hex(&format!("{hex}00")), None);
        assert_eq!(RequestHash::from_hex(&format!("+{}", &hex[1..])), None);
    }

    #[test]
    fn http_params_need_exactly_valid_headers() {
        assert_eq!(
            validate_params(HTTP_PROFILE, &json!({"headers": []})),
            Ok(())
        );
        assert_eq!(
            validate_params(HTTP_PROFILE, &json!({"headers": ["accept", "cookie"]})),
            Ok(())
        );
        for bad in [
            json!({}),
            json!([]),
            json!({"headers": [], "extra": 1}),
            json!({"headers": "accept"}),
            json!({"headers": [1]}),
            json!({"headers": ["cookie", "accept"]}),
            json!({"headers": ["Accept"]}),
            json!({"headers": ["payment-signature"]}),
        ] {
            let err = validate_params(HTTP_PROFILE, &bad).err();
            assert_eq!(
                err.map(|err| err.reason()),
                Some(reason::REQUEST_BINDING),
                "{bad}"
            );
        }
    }

    #[test]
    fn mcp_params_need_exactly_a_server_and_valid_metadata() {
        let ok = json!({"server": "https://api.example.com/mcp", "metadata": ["account"]});
        assert_eq!(validate_params(MCP_PROFILE, &ok), Ok(()));
        for bad in [
            json!({"server": "https://api.example.com/mcp"}),
            json!({"metadata": []}),
            json!({"server": "https://api.example.com/mcp", "metadata": [], "headers": []}),
            json!({"server": "https://api.example.com/mcp#x", "metadata": []}),
            json!({"server": "/mcp", "metadata": []}),
            json!({"server": "https://api.example.com/mcp", "metadata": ["progressToken"]}),
            json!({"server": "https://api.example.com/mcp", "metadata": ["x402/payment"]}),
            json!({"server": "https://api.example.com/mcp", "metadata": ["b", "a"]}),
            json!({"server": "https://api.example.com/mcp", "metadata": [""]}),
            json!({"server": 1, "metadata": []}),
        ] {
            let err = validate_params(MCP_PROFILE, &bad).err();
            assert_eq!(
                err.map(|err| err.reason()),
                Some(reason::REQUEST_BINDING),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_profiles_are_refused() {
        for profile in ["http:2", "HTTP:1", "", "mcp"] {
            let err = validate_params(profile, &json!({"headers": []})).err();
            assert_eq!(err.map(|err| err.reason()), Some(reason::REQUEST_BINDING));
        }
    }
}
