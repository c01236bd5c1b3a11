//! The `http:1` server adapter: the hashed URL is always the configured public origin plus the
//! raw request target, never an authority the requester chose. The request's authority lines
//! (`:authority`, `Host`, `X-Forwarded-Host`) and `X-Forwarded-Proto` must be well formed, and
//! the public one must agree with the authority of the URL the request was sent to, when the
//! server knows one (upstream open question `http-adapter-origin-policy`: a request that
//! consistently names another origin is bound to the configured one, outcome
//! `bind_configured_origin`; one whose authorities disagree is refused, `reject_mismatch`).

use std::net::Ipv6Addr;

use super::http::{build, check_http_url, check_method, trim_ows};
use super::uri::{self, Authority, Host, HostRules};
use super::{Binding, BindingError, BoundHeaders};

/// A server's configured public origin (`scheme://host[:port]`, no path), the only origin its
/// `http:1` bindings ever use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicOrigin {
    /// `scheme://host[:port]` as hashed: scheme and host lowercase, default port dropped.
    origin: String,
    host: OriginHost,
    /// The port, the scheme's default when none is written.
    port: u16,
    /// The scheme's default port, which an authority without a port names.
    default_port: u16,
}

/// The configured host, in the form authorities are compared with.
#[derive(Clone, Debug, PartialEq, Eq)]
enum OriginHost {
    /// A lowercase registered name or IPv4 address.
    Name(String),
    Ipv6(Ipv6Addr),
}

impl PublicOrigin {
    /// Parses an `http`/`https` origin; the default port of the scheme is dropped. Scheme and
    /// host are lowercased and an IPv6 address is written in its RFC 5952 form, as clients'
    /// URL libraries write them; one trailing `/` is allowed and dropped.
    pub fn parse(origin: &str) -> Result<Self, BindingError> {
        let refuse = |why: &str| BindingError::binding(format!("public origin {origin:?} {why}"));
        let Some((scheme, rest)) = origin.split_once("://") else {
            return Err(refuse("is not scheme://host[:port]"));
        };
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(refuse("is not http or https")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(refuse("has a path, query or fragment"));
        }
        let parsed =
            uri::parse_authority(authority, HostRules::Plain).map_err(|err| refuse(&err))?;
        let (host, written) = match parsed.host {
            Host::Name(name) => {
                let name = name.to_ascii_lowercase();
                (OriginHost::Name(name.clone()), name)
            }
            Host::Ipv6(address) => (OriginHost::Ipv6(address), format!("[{address}]")),
        };
        let port = parsed.port.unwrap_or(default_port);
        let origin = if port == default_port {
            format!("{scheme}://{written}")
        } else {
            format!("{scheme}://{written}:{port}")
        };
        Ok(Self {
            origin,
            host,
            port,
            default_port,
        })
    }

    /// The origin as hashed, e.g. `https://api.example.com`.
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    /// Whether two request authorities name the same host and port (hosts case-insensitively,
    /// no port meaning this origin's scheme's default).
    fn same_authority(&self, one: &Authority<'_>, other: &Authority<'_>) -> bool {
        let same_host = match (one.host, other.host) {
            (Host::Name(one), Host::Name(other)) => one.eq_ignore_ascii_case(other),
            (Host::Ipv6(one), Host::Ipv6(other)) => one == other,
            _ => false,
        };
        same_host
            && one.port.unwrap_or(self.default_port) == other.port.unwrap_or(self.default_port)
    }
}

/// `http:1` as a server adapter computes it: the configured origin plus the raw request
/// `target` (path and query as received), after checking the request's authority lines
/// (`:authority`, `Host`, `X-Forwarded-Host`, `X-Forwarded-Proto`, as `header_lines`).
///
/// `request_authority` is the authority of the URL the request was sent to, when the server
/// has one apart from those lines (an absolute-form request target, HTTP/2's `:authority` as
/// the server's URI holds it); `None` for an origin-form HTTP/1.1 request.
///
/// Every authority and protocol line present must be well formed (`request_binding`); the
/// public authority (the first `X-Forwarded-Host` hop, else `:authority`, else `Host`) must
/// agree with `request_authority` when both are known (`request_mismatch`). The hashed origin
/// is the configured one in every case, so a request naming another origin throughout is bound
/// to the configured origin, and its client (which binds the URL it used) cannot pay it.
pub fn server_http_binding(
    origin: &PublicOrigin,
    method: &str,
    target: &str,
    request_authority: Option<&str>,
    body: &[u8],
    bound: &BoundHeaders,
    header_lines: &[(&str, &[u8])],
) -> Result<Binding, BindingError> {
    check_method(method)?;
    uri::check_origin_form(target)
        .map_err(|err| BindingError::binding(format!("request target {err}")))?;
    let requested = request_authority
        .map(|authority| {
            uri::parse_authority(authority, HostRules::Plain)
                .map_err(|err| BindingError::binding(format!("request authority {err}")))
        })
        .transpose()?;
    let public = public_authority(header_lines)?;
    if let (Some(public), Some(requested)) = (&public, &requested) {
        if !origin.same_authority(public, requested) {
            return Err(BindingError::mismatch(
                "the request's Host (or forwarded host) is not the authority it was sent to",
            ));
        }
    }
    let url = format!("{}{target}", origin.as_str());
    check_http_url(&url)?;
    build(method, &url, body, bound, header_lines)
}

/// Checks every authority and protocol line and returns the public authority, if any.
fn public_authority<'v>(
    header_lines: &[(&str, &'v [u8])],
) -> Result<Option<Authority<'v>>, BindingError> {
    let pseudo = single_authority(header_lines, ":authority")?;
    let host = single_authority(header_lines, "host")?;
    let mut first_forwarded = None;
    for hop in hops(header_lines, "x-forwarded-host")? {
        let authority = uri::parse_authority(hop, HostRules::Plain)
            .map_err(|err| BindingError::binding(format!("X-Forwarded-Host hop {err}")))?;
        first_forwarded.get_or_insert(authority);
    }
    for hop in hops(header_lines, "x-forwarded-proto")? {
        if !uri::is_scheme(hop) {
            return Err(BindingError::binding(format!(
                "X-Forwarded-Proto hop {hop:?} is not a scheme"
            )));
        }
    }
    Ok(first_forwarded.or(pseudo).or(host))
}

/// The authority of the one `name` line, if present; two lines are refused.
fn single_authority<'v>(
    header_lines: &[(&str, &'v [u8])],
    name: &str,
) -> Result<Option<Authority<'v>>, BindingError> {
    let mut values = lines(header_lines, name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BindingError::binding(format!("more than one {name} line")));
    }
    let value = ascii(value, name)?;
    uri::parse_authority(value, HostRules::Plain)
        .map(Some)
        .map_err(|err| BindingError::binding(format!("{name} {err}")))
}

/// The comma-separated hops of every `name` line, each stripped of whitespace.
fn hops<'v>(header_lines: &[(&str, &'v [u8])], name: &str) -> Result<Vec<&'v str>, BindingError> {
    let mut hops = Vec::new();
    for value in lines(header_lines, name) {
        let value = ascii(value, name)?;
        hops.extend(value.split(',').map(|hop| hop.trim_matches([' ', '\t'])));
    }
    Ok(hops)
}

/// The values of the lines named `name` (any case).
fn lines<'a, 'v>(
    header_lines: &'a [(&str, &'v [u8])],
    name: &'a str,
) -> impl Iterator<Item = &'v [u8]> + 'a {
    header_lines
        .iter()
        .filter(move |(line, _)| line.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
}

/// `value` stripped of surrounding whitespace, as text; bytes beyond ASCII are refused (the
/// authority checks then refuse anything a host or scheme cannot hold).
fn ascii<'v>(value: &'v [u8], name: &str) -> Result<&'v str, BindingError> {
    let value = trim_ows(value);
    if !value.is_ascii() {
        return Err(BindingError::binding(format!("{name} is not ASCII")));
    }
    std::str::from_utf8(value).map_err(|_| BindingError::binding(format!("{name} is not ASCII")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_as_clients_write_them() {
        let cases = [
            ("https://api.example.com", "https://api.example.com"),
            ("HTTPS://API.Example.com:443/", "https://api.example.com"),
            ("http://localhost:8080", "http://localhost:8080"),
            ("http://a:443", "http://a:443"),
            ("https://[0:0::1]:8443", "https://[::1]:8443"),
        ];
        for (given, hashed) in cases {
            let origin = PublicOrigin::parse(given).map(|origin| origin.as_str().to_owned());
            assert_eq!(origin.as_deref(), Ok(hashed), "{given}");
        }
        for bad in [
            "api.example.com",
            "ftp://a",
            "https://a/path",
            "https://a?q",
            "https://u@a",
            "https://a:0",
            "https://",
            "https://a%41",
        ] {
            assert!(PublicOrigin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn two_host_lines_are_refused() {
        let origin = PublicOrigin::parse("https://api.example.com");
        let lines: [(&str, &[u8]); 2] =
            [("Host", b"api.example.com"), ("host", b"api.example.com")];
        let result = origin.and_then(|origin| {
            server_http_binding(
                &origin,
                "GET",
                "/",
                None,
                b"",
                &BoundHeaders::default(),
                &lines,
            )
        });
        assert_eq!(
            result.err().map(|err| err.reason()),
            Some(crate::lnbtc::reason::REQUEST_BINDING)
        );
    }

    #[test]
    fn another_origin_named_throughout_is_bound_to_the_configured_one() {
        let origin = PublicOrigin::parse("http://127.0.0.1:3000");
        let lines: [(&str, &[u8]); 1] = [("Host", b"localhost:3000")];
        let binding = origin.as_ref().map_err(Clone::clone).and_then(|origin| {
            server_http_binding(
                origin,
                "GET",
                "/w",
                None,
                b"",
                &BoundHeaders::default(),
                &lines,
            )
        });
        assert!(binding.is_ok_and(|binding| {
            binding
                .description
                .contains(r#""url":"http://127.0.0.1:3000/w""#)
        }));
        // The same Host sent to another authority than it names: refused.
        let refused = origin.and_then(|origin| {
            server_http_binding(
                &origin,
                "GET",
                "/w",
                Some("127.0.0.1:3000"),
                b"",
                &BoundHeaders::default(),
                &lines,
            )
        });
        assert_eq!(
            refused.err().map(|err| err.reason()),
            Some(crate::lnbtc::reason::REQUEST_MISMATCH)
        );
    }

    #[test]
    fn the_configured_origin_is_hashed_whatever_the_proxy_hops_say() {
        let origin = PublicOrigin::parse("https://api.example.com");
        let lines: [(&str, &[u8]); 2] = [
            ("X-Forwarded-Host", b"API.example.com:443"),
            ("Host", b"internal:8080"),
        ];
        let binding = origin.and_then(|origin| {
            server_http_binding(
                &origin,
                "GET",
                "/a?b",
                None,
                b"",
                &BoundHeaders::default(),
                &lines,
            )
        });
        let description = binding.map(|binding| binding.description);
        assert!(
            description
                .as_deref()
                .is_ok_and(|text| text.contains(r#""url":"https://api.example.com/a?b""#)),
            "{description:?}"
        );
    }
}
