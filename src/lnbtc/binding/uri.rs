//! RFC 3986 syntax checks for the URIs, request targets and authorities a binding names.
//! Nothing is normalized: a binding hashes what it was given, so these only accept or refuse.

use std::net::Ipv6Addr;

/// The parts of a checked absolute URI that callers look at.
#[derive(Debug)]
pub(super) struct AbsoluteUri<'a> {
    /// The scheme as written.
    pub(super) scheme: &'a str,
    /// The authority, when the URI has one (`//…`).
    pub(super) authority: Option<Authority<'a>>,
}

/// A checked `host[:port]`, without user information.
#[derive(Clone, Copy, Debug)]
pub(super) struct Authority<'a> {
    pub(super) host: Host<'a>,
    pub(super) port: Option<u16>,
}

/// A checked host.
#[derive(Clone, Copy, Debug)]
pub(super) enum Host<'a> {
    /// A registered name or IPv4 address, as written (possibly empty in a generic URI).
    Name(&'a str),
    /// A bracketed IPv6 address.
    Ipv6(Ipv6Addr),
}

/// How strict an authority check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HostRules {
    /// RFC 3986 `host`, which may be empty (a generic URI such as `file:///x`).
    Generic,
    /// A non-empty host, as an `http`/`https` URI needs.
    NonEmpty,
    /// An authority from a request header or configuration: non-empty, and no percent
    /// escapes or commas in a name (a comma separates proxy hops; an escape is never needed).
    Plain,
}

/// Checks `uri` as an RFC 3986 `absolute-URI` (`scheme ":" hier-part [ "?" query ]`) in ASCII,
/// refusing user information, a fragment, malformed percent escapes and ports outside
/// 1..=65535.
pub(super) fn parse_absolute_uri(uri: &str, rules: HostRules) -> Result<AbsoluteUri<'_>, String> {
    if uri.contains('#') {
        return Err("has a fragment".to_owned());
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err("is not absolute (no scheme)".to_owned());
    };
    if !is_scheme(scheme) {
        return Err("is not absolute (no valid scheme)".to_owned());
    }
    let (hier, query) = match rest.split_once('?') {
        Some((hier, query)) => (hier, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match hier.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            let (authority, path) = after.split_at(end);
            (Some(parse_authority(authority, rules)?), path)
        }
        None => (None, hier),
    };
    check_path(path)?;
    if let Some(query) = query {
        check_query(query)?;
    }
    Ok(AbsoluteUri { scheme, authority })
}

/// Checks `target` as an HTTP `origin-form` request target: `absolute-path [ "?" query ]`.
pub(super) fn check_origin_form(target: &str) -> Result<(), String> {
    if target.contains('#') {
        return Err("has a fragment".to_owned());
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    if !path.starts_with('/') {
        return Err("does not start with '/'".to_owned());
    }
    check_path(path)?;
    if let Some(query) = query {
        check_query(query)?;
    }
    Ok(())
}

/// Checks `authority` as `host [ ":" port ]` (RFC 3986 without `userinfo`).
pub(super) fn parse_authority(authority: &str, rules: HostRules) -> Result<Authority<'_>, String> {
    if authority.contains('@') {
        return Err("has user information".to_owned());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((literal, after)) = bracketed.split_once(']') else {
            return Err("has an unclosed IPv6 literal".to_owned());
        };
        // IPvFuture and zone identifiers are refused: no HTTP origin needs them.
        let address = literal
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("has an invalid IPv6 literal {literal:?}"))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err("has text after its IPv6 literal".to_owned()),
            },
        };
        (Host::Ipv6(address), port)
    } else {
        let (name, port) = match authority.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        };
        check_reg_name(name, rules)?;
        (Host::Name(name), port)
    };
    let port = port.map(parse_port).transpose()?;
    Ok(Authority { host, port })
}

/// Checks an RFC 3986 `reg-name` (which covers IPv4 addresses) under `rules`.
fn check_reg_name(name: &str, rules: HostRules) -> Result<(), String> {
    if name.is_empty() && rules != HostRules::Generic {
        return Err("has an empty host".to_owned());
    }
    let plain = rules == HostRules::Plain;
    let bytes = name.as_bytes();
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' && !plain {
            check_escape(bytes, index)?;
            index += 3;
            continue;
        }
        if !(is_unreserved(byte) || is_sub_delim(byte)) || (plain && byte == b',') {
            return Err(format!("has an invalid host {name:?}"));
        }
        index += 1;
    }
    Ok(())
}

/// Parses a port: 1 to 5 digits, 1..=65535 (port 0 is refused: `http-port-zero`).
fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("has an invalid port {port:?}"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("has a port out of range {port:?}")),
        Ok(number) => Ok(number),
    }
}

/// Checks a path: `pchar` and `/` only.
fn check_path(path: &str) -> Result<(), String> {
    check_chars(path, |byte| is_pchar(byte) || byte == b'/').map_err(|err| format!("path {err}"))
}

/// Checks a query: `pchar`, `/` and `?` only.
fn check_query(query: &str) -> Result<(), String> {
    check_chars(query, |byte| is_pchar(byte) || byte == b'/' || byte == b'?')
        .map_err(|err| format!("query {err}"))
}

/// Checks that `text` holds only bytes `allowed` accepts and well-formed percent escapes.
fn check_chars(text: &str, allowed: impl Fn(u8) -> bool) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            check_escape(bytes, index)?;
            index += 3;
        } else if allowed(byte) {
            index += 1;
        } else if byte.is_ascii() {
            return Err(format!(
                "has a character URIs do not allow ({:?})",
                byte as char
            ));
        } else {
            return Err("is not ASCII".to_owned());
        }
    }
    Ok(())
}

/// Checks the percent escape starting at `bytes[index]`.
fn check_escape(bytes: &[u8], index: usize) -> Result<(), String> {
    match bytes.get(index + 1..index + 3) {
        Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => Ok(()),
        _ => Err("has a malformed percent escape".to_owned()),
    }
}

/// RFC 3986 `scheme`: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
pub(super) fn is_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.'))
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(byte: u8) -> bool {
    matches!(
        byte,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn is_pchar(byte: u8) -> bool {
    is_unreserved(byte) || is_sub_delim(byte) || matches!(byte, b':' | b'@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_uris_keep_their_spelling_and_refuse_what_rfc_3986_refuses() {
        for good in [
            "https://api.example.com/article/A?x=%2F&y=a:b@c/?d",
            "http://127.0.0.1:8080",
            "https://[::1]:8443/",
            "urn:example:mcp",
            "file:///srv/mcp",
        ] {
            assert!(
                parse_absolute_uri(good, HostRules::Generic).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "/relative",
            "1http://a/",
            "https://a/b c",
            "https://a/%4",
            "https://a/%gg",
            "https://a:/",
            "https://a:0/",
            "https://a:65536/",
            "https://a:123456/",
            "https://u@a/",
            "https://[::1/",
            "https://[v1.x]/",
            "https://[::1]x/",
            "https://a/\u{e9}",
            "https://a/\"",
            "https://a/b#c",
        ] {
            assert!(
                parse_absolute_uri(bad, HostRules::Generic).is_err(),
                "{bad}"
            );
        }
        assert!(parse_absolute_uri("https:///path", HostRules::NonEmpty).is_err());
    }

    #[test]
    fn plain_authorities_refuse_escapes_and_commas() {
        assert!(parse_authority("api.example.com:443", HostRules::Plain).is_ok());
        assert!(parse_authority("a%41", HostRules::NonEmpty).is_ok());
        assert!(parse_authority("a%41", HostRules::Plain).is_err());
        assert!(parse_authority("a,b", HostRules::Plain).is_err());
        assert!(parse_authority("", HostRules::Plain).is_err());
    }
}
