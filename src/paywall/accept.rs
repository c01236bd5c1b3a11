//! Content negotiation: does this request prefer an HTML page to JSON? Only a browser's
//! navigation does (`Accept: text/html,…,*/*;q=0.8`); API clients (`application/json`, `*/*`,
//! no `Accept` at all) keep the JSON 402. RFC 9110 §12.5.1: each media range with its weight
//! `q` (default 1), the most specific range deciding for a type.

use http::HeaderMap;
use http::header::ACCEPT;

/// Whether the request's `Accept` names `text/html` itself (not through a wildcard) with a
/// weight above zero, and weighs it above `application/json`. A tie goes to JSON: a client
/// that takes both is a program more often than a person.
pub(crate) fn prefers_html(headers: &HeaderMap) -> bool {
    let mut html = Weight::default();
    let mut json = Weight::default();
    let ranges = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for range in ranges {
        let Some((media, q)) = media_range(range) else {
            continue;
        };
        html.consider(&media, "text", "html", q);
        json.consider(&media, "application", "json", q);
    }
    html.explicit && html.q() > 0 && html.q() > json.q()
}

/// The weight one media type gets from an `Accept` list: that of its most specific range.
#[derive(Default)]
struct Weight {
    /// The specificity of the best range seen: 0 none, 1 `*/*`, 2 `type/*`, 3 `type/subtype`.
    specificity: u8,
    /// Its `q`, in thousandths.
    q: u16,
    /// Whether the type itself was named.
    explicit: bool,
}

impl Weight {
    fn consider(&mut self, media: &str, kind: &str, subtype: &str, q: u16) {
        let Some((range_kind, range_subtype)) = media.split_once('/') else {
            return;
        };
        let specificity = match (range_kind, range_subtype) {
            ("*", "*") => 1,
            (range_kind, "*") if range_kind.eq_ignore_ascii_case(kind) => 2,
            (range_kind, range_subtype)
                if range_kind.eq_ignore_ascii_case(kind)
                    && range_subtype.eq_ignore_ascii_case(subtype) =>
            {
                3
            }
            _ => return,
        };
        // The most specific range wins; among equals (a repeated range), the higher weight.
        if specificity > self.specificity || (specificity == self.specificity && q > self.q) {
            self.specificity = specificity;
            self.q = q;
        }
        self.explicit |= specificity == 3;
    }

    /// The weight, 0 when no range covers the type.
    fn q(&self) -> u16 {
        if self.specificity == 0 { 0 } else { self.q }
    }
}

/// One media range of `Accept`: its `type/subtype` (trimmed) and its `q` in thousandths
/// (1000 when absent; a malformed `q` makes the range unusable).
fn media_range(range: &str) -> Option<(String, u16)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim();
    if media.is_empty() {
        return None;
    }
    let mut q = 1000;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_q(value.trim())?;
        }
    }
    Some((media.to_owned(), q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, digit| acc * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefers(accept: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(ACCEPT, accept.parse().unwrap());
        }
        prefers_html(&headers)
    }

    #[test]
    fn browser_navigations_prefer_the_page() {
        for accept in [
            // Chromium, Firefox, Safari navigations.
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8 ",
            "TEXT/HTML",
            "text/html;level=1;q=0.9, application/json;q=0.5",
            "application/json;q=0.5, text/html",
        ] {
            assert!(prefers(Some(accept)), "{accept}");
        }
    }

    #[test]
    fn api_clients_keep_the_json_answer() {
        for accept in [
            None,
            Some("application/json"),
            Some("*/*"),
            Some(""),
            Some("text/*"),
            Some("text/html, application/json"),
            Some("application/json, text/html;q=0.9"),
            Some("text/html;q=0"),
            Some("text/html;q=0.000"),
            Some("text/html;q=2"),
            Some("text/html;q=abc"),
            Some("text/html;q=0.5, */*"),
            Some("application/*, text/html;q=0.8"),
            Some("image/png"),
            Some("text/plain"),
        ] {
            assert!(!prefers(accept), "{accept:?}");
        }
    }

    #[test]
    fn a_repeated_accept_header_counts_whole() {
        let mut headers = HeaderMap::new();
        headers.append(ACCEPT, "application/json;q=0.4".parse().unwrap());
        headers.append(ACCEPT, "text/html".parse().unwrap());
        assert!(prefers_html(&headers));
    }

    #[test]
    fn weights_parse_as_rfc_9110_writes_them() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.8"), Some(800));
        assert_eq!(parse_q("0.001"), Some(1));
        assert_eq!(parse_q("0"), Some(0));
        for bad in ["1.001", "0.0001", "-1", "", ".5", "0.x", "2"] {
            assert_eq!(parse_q(bad), None, "{bad}");
        }
    }
}
