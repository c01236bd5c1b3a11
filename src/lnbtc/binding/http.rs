//! The `http:1` profile: the binding object of an HTTP request, and its bound header names.

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::DisplayHex as _;
use serde_json::{Value, json};

use super::uri::{self, HostRules};
use super::{Binding, BindingError, HTTP_PROFILE, domain, exact_members, string_array, value_hash};

/// The one header a route can never bind: it carries the payment, not the request.
const PAYMENT_SIGNATURE: &str = "payment-signature";

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
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        for name in &names {
            if !is_token(name) || name.bytes().any(|byte| byte.is_ascii_uppercase()) {
                return Err(BindingError::binding(format!(
                    "bound header {name:?} is not a lowercase field-name token"
                )));
            }
            if name == PAYMENT_SIGNATURE {
                return Err(BindingError::binding(
                    "payment-signature cannot be a bound header",
                ));
            }
        }
        if let Some(pair) = names.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(BindingError::binding(format!(
                "bound headers are not unique and ascending ({:?} before {:?})",
                pair[0], pair[1]
            )));
        }
        Ok(Self(names))
    }

    /// Validates an `http:1` `requestBindingParams` object: exactly `{"headers": [names…]}`.
    pub fn from_params(params: &Value) -> Result<Self, BindingError> {
        let members = exact_members(params, HTTP_PROFILE, &["headers"])?;
        let names = members
            .get("headers")
            .map(|headers| string_array(headers, "http:1 headers"))
            .transpose()?
            .unwrap_or_default();
        Self::new(names)
    }

    /// The names.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// `{"headers": [names…]}`, the `requestBindingParams` of `http:1`.
    pub fn params(&self) -> Value {
        json!({ "headers": self.0 })
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
    check_method(method)?;
    check_http_url(url)?;
    build(method, url, body, bound, header_lines)
}

/// Builds and hashes the binding object of a checked method and URL.
pub(super) fn build(
    method: &str,
    url: &str,
    body: &[u8],
    bound: &BoundHeaders,
    header_lines: &[(&str, &[u8])],
) -> Result<Binding, BindingError> {
    let headers = bound
        .names()
        .iter()
        .map(|name| {
            let value = field_value(name, header_lines)?;
            Ok(json!({
                "name": name,
                "valueHash": value_hash(value.as_deref().map(str::as_bytes)),
            }))
        })
        .collect::<Result<Vec<Value>, BindingError>>()?;
    Binding::of(&json!({
        "domain": domain(HTTP_PROFILE),
        "method": method,
        "url": url,
        "bodyHash": sha256::Hash::hash(body).to_byte_array().to_lower_hex_string(),
        "headers": headers,
    }))
}

/// Checks an HTTP method: a non-empty token, case as sent.
pub(super) fn check_method(method: &str) -> Result<(), BindingError> {
    if is_token(method) {
        Ok(())
    } else {
        Err(BindingError::binding(format!(
            "method {method:?} is not an HTTP token"
        )))
    }
}

/// Checks an `http:1` URL: absolute `http`/`https` with a host, ASCII URI syntax, no user
/// information or fragment.
pub(super) fn check_http_url(url: &str) -> Result<(), BindingError> {
    let parsed = uri::parse_absolute_uri(url, HostRules::NonEmpty)
        .map_err(|err| BindingError::binding(format!("url {err}")))?;
    let http =
        parsed.scheme.eq_ignore_ascii_case("http") || parsed.scheme.eq_ignore_ascii_case("https");
    if !http {
        return Err(BindingError::binding(format!(
            "url scheme {:?} is not http or https",
            parsed.scheme
        )));
    }
    if parsed.authority.is_none() {
        return Err(BindingError::binding("url has no authority"));
    }
    Ok(())
}

/// The RFC 9421 §2.1 value of header `name` (lowercase): every line with that name in any
/// case, each stripped of leading and trailing whitespace, joined with `", "`; `None` when no
/// line has that name. A value that is not visible ASCII, space or tab is refused.
pub(super) fn field_value(
    name: &str,
    header_lines: &[(&str, &[u8])],
) -> Result<Option<String>, BindingError> {
    let mut joined: Option<String> = None;
    for (_, value) in header_lines
        .iter()
        .filter(|(line, _)| line.eq_ignore_ascii_case(name))
    {
        let value = trim_ows(value);
        if !value
            .iter()
            .all(|&byte| byte == b'\t' || (b' '..=b'~').contains(&byte))
        {
            return Err(BindingError::binding(format!(
                "header {name:?} holds a byte other than visible ASCII, space or tab"
            )));
        }
        // Only ASCII bytes are left, so this cannot fail.
        let value = std::str::from_utf8(value)
            .map_err(|_| BindingError::binding(format!("header {name:?} is not ASCII")))?;
        match joined.as_mut() {
            Some(joined) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            None => joined = Some(value.to_owned()),
        }
    }
    Ok(joined)
}

/// `value` without leading and trailing spaces and tabs (RFC 9110 `OWS`).
pub(super) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = value
        .iter()
        .position(|byte| !is_ows(byte))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|byte| !is_ows(byte))
        .map_or(start, |last| last + 1);
    value.get(start..end).unwrap_or_default()
}

/// RFC 9110 `token`: one or more `tchar`.
pub(super) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|byte| {
            byte.is_ascii_alphanumeric()
                || matches!(
                    byte,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_ows_strips_only_spaces_and_tabs() {
        assert_eq!(trim_ows(b" \ta b\t "), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\r\n"), b"\r\n");
    }

    #[test]
    fn field_values_join_every_line_and_refuse_controls() {
        let lines: [(&str, &[u8]); 3] = [("Accept", b" a "), ("other", b"x"), ("ACCEPT", b"b")];
        assert_eq!(field_value("accept", &lines), Ok(Some("a, b".to_owned())));
        assert_eq!(field_value("cookie", &lines), Ok(None));
        let bad: [(&str, &[u8]); 1] = [("accept", b"a\x7fb")];
        assert!(field_value("accept", &bad).is_err());
    }
}
