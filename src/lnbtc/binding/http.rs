//! The `http:1` profile: the binding object of an HTTP request, and its bound header names.

use bitcoin::hashes::{Hash as _, sha256};
use serde_json::{Value, json};

use super::super::invoice::encode_lower_hex;
use super::uri::{self, HostRules};
use super::{
    Binding, BindingError, HTTP_DOMAIN, HTTP_PROFILE, exact_members, string_array, value_hash,
};

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
            Ok((
                name.as_str(),
                value_hash(value.as_deref().map(str::as_bytes)),
            ))
        })
        .collect::<Result<Vec<_>, BindingError>>()?;
    let body_hash = encode_lower_hex(&sha256::Hash::hash(body).to_byte_array());
    let description = canonical(HTTP_DOMAIN, method, url, &body_hash, &headers)?;
    Ok(Binding::of_canonical(description))
}

/// The JCS (RFC 8785) text of the `http:1` binding object `{"domain", "method", "url",
/// "bodyHash", "headers": [{"name", "valueHash"}]}`, written directly rather than through a
/// generic canonicalizer (it is on every priced request's path): its members are strings and
/// an array of objects of strings, so JCS is their keys in order (`bodyHash`, `domain`,
/// `headers`, `method`, `url`; `name`, `valueHash`) and each string as `serde_json` writes it,
/// which is JCS's string form (`\"`, `\\`, the short escapes, `\u00xx` in lowercase for the
/// other control characters, everything else as is).
fn canonical(
    domain: &str,
    method: &str,
    url: &str,
    body_hash: &str,
    headers: &[(&str, String)],
) -> Result<String, BindingError> {
    let mut out = Vec::with_capacity(256);
    let string = |out: &mut Vec<u8>, text: &str| {
        serde_json::to_writer(out, text)
            .map_err(|err| BindingError::binding(format!("cannot canonicalize: {err}")))
    };
    out.extend_from_slice(br#"{"bodyHash":"#);
    string(&mut out, body_hash)?;
    out.extend_from_slice(br#","domain":"#);
    string(&mut out, domain)?;
    out.extend_from_slice(br#","headers":["#);
    for (index, (name, value_hash)) in headers.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"name":"#);
        string(&mut out, name)?;
        out.extend_from_slice(br#","valueHash":"#);
        string(&mut out, value_hash)?;
        out.push(b'}');
    }
    out.extend_from_slice(br#"],"method":"#);
    string(&mut out, method)?;
    out.extend_from_slice(br#","url":"#);
    string(&mut out, url)?;
    out.push(b'}');
    String::from_utf8(out)
        .map_err(|err| BindingError::binding(format!("cannot canonicalize: {err}")))
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

    #[test]
    fn the_written_description_is_what_a_jcs_canonicalizer_makes() {
        let odd = "q\"uote\\back\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f}/é\u{2028}𝄞";
        let hashes = ["a".repeat(64), "b".repeat(64)];
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, String)]);
        let cases: [Case<'_>; 4] = [
            ("GET", "https://api.example.com/a?b=c", &[]),
            (
                "POST",
                "http://127.0.0.1:3000/ai/infer",
                &[("content-type", hashes[0].clone())],
            ),
            (
                odd,
                odd,
                &[("accept", hashes[0].clone()), ("x-odd", hashes[1].clone())],
            ),
            ("", "", &[("", String::new())]),
        ];
        for (method, url, headers) in cases {
            let written =
                canonical(HTTP_DOMAIN, method, url, &hashes[1], headers).expect("canonical");
            let object = json!({
                "domain": HTTP_DOMAIN,
                "method": method,
                "url": url,
                "bodyHash": hashes[1],
                "headers": headers
                    .iter()
                    .map(|(name, hash)| json!({ "name": name, "valueHash": hash }))
                    .collect::<Vec<_>>(),
            });
            let expected = serde_json_canonicalizer::to_string(&object).expect("canonicalizes");
            assert_eq!(written, expected, "{method:?} {url:?}");
        }
    }
}
