//! Request binding (upstream `scheme_exact_lnbtc.md`, "Request Binding"): the request hash that
//! an invoice's description hash commits to, for the `http:1` and `mcp:1` profiles, and the
//! HTTP server adapter's origin rules.
//!
//! `requestHash = SHA-256(UTF8(JCS(binding)))`, where `binding` is the profile's object built
//! from the actual request. Every failure is a [`BindingError`] whose
//! [`reason`](BindingError::reason) is `invalid_exact_lnbtc_request_binding` or
//! `invalid_exact_lnbtc_request_mismatch`.

use std::fmt;

use serde_json::Value;

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
        todo!("{hex}")
    }

    /// The 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        todo!()
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
}

/// The bound header names of an `http:1` route: lowercase HTTP field-name tokens in ascending
/// byte order, unique, never `payment-signature`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundHeaders(Vec<String>);

impl BoundHeaders {
    /// Validates `names` as given (not sorted for the caller: an unsorted list is an error).
    pub fn new<I, S>(names: I) -> Result<Self, BindingError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let _ = names;
        todo!()
    }

    /// The names.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// `{"headers": [names…]}`, the `requestBindingParams` of `http:1`.
    pub fn params(&self) -> Value {
        todo!()
    }
}

/// `http:1` from a full request: `method` (case kept), absolute `url`, the body bytes, and the
/// request's header lines (any name case; repeated lines are joined as RFC 9421 §2.1 says).
pub fn http_binding(
    method: &str,
    url: &str,
    body: &[u8],
    bound: &BoundHeaders,
    header_lines: &[(&str, &[u8])],
) -> Result<Binding, BindingError> {
    let _ = (method, url, body, bound, header_lines);
    todo!()
}

/// A server's configured public origin (`scheme://host[:port]`, no path), the only origin its
/// `http:1` bindings ever use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicOrigin(String);

impl PublicOrigin {
    /// Parses an `http`/`https` origin; the default port of the scheme is dropped.
    pub fn parse(origin: &str) -> Result<Self, BindingError> {
        let _ = origin;
        todo!()
    }

    /// The origin as hashed, e.g. `https://api.example.com`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `http:1` as a server adapter computes it: the configured origin plus the raw request
/// `target` (path and query as received), after checking the request's authority
/// (`:authority`, `Host`, `X-Forwarded-Host`, `X-Forwarded-Proto` lines, as `header_lines`)
/// against the origin.
pub fn server_http_binding(
    origin: &PublicOrigin,
    method: &str,
    target: &str,
    body: &[u8],
    bound: &BoundHeaders,
    header_lines: &[(&str, &[u8])],
) -> Result<Binding, BindingError> {
    let _ = (origin, method, target, body, bound, header_lines);
    todo!()
}

/// `mcp:1` for a `tools/call` whose `params` are the raw JSON text `params_json` (so duplicate
/// member names, lone surrogates and out-of-range integers are seen), on the MCP endpoint
/// `server`, binding the `_meta` members named in `bound_metadata`.
pub fn mcp_binding(
    server: &str,
    bound_metadata: &[String],
    params_json: &str,
) -> Result<Binding, BindingError> {
    let _ = (server, bound_metadata, params_json);
    todo!()
}

/// Checks the syntax of `requestBindingParams` for `profile` (exactly the profile's members,
/// well formed); an unknown profile is an error too.
pub fn validate_params(profile: &str, params: &Value) -> Result<(), BindingError> {
    let _ = (profile, params);
    todo!()
}
