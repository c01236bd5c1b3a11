//! The page itself: the challenge's data ([`PaywallPage`]), the default HTML, its QR code, its
//! `Content-Security-Policy`, and the 402 response that carries it.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine as _;
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::DisplayHex as _;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, VARY};
use http::{HeaderName, HeaderValue, Response};

use super::Paywall;
use crate::lnbtc::types::PaymentRequired;
use crate::network::Network;

/// The request header of the page's poll: `X402-Invoice-State: <the BOLT11 invoice>` on a `GET`
/// of the page's own URL. See the [module](super) for its answer.
pub const INVOICE_STATE_HEADER: &str = "x402-invoice-state";

/// How often, at most, the layer asks its receiver about one invoice.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The page's script and style, allowed by their hashes in the page's policy.
const SCRIPT: &str = include_str!("assets/paywall.js");
const STYLE: &str = include_str!("assets/paywall.css");

/// The title of a page without one of its own.
const DEFAULT_TITLE: &str = "Payment required";

/// The page's policy: its own script and style by hash, same-origin requests (the poll, the
/// paid request, and what a bought HTML page loads), images from itself, no plugins, no
/// `<base>`, forms only to itself, never framed.
static DEFAULT_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'self'; script-src '{}'; style-src 'self' '{}'; img-src 'self' data: blob:; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        csp_hash(SCRIPT),
        csp_hash(STYLE)
    )
});

/// `sha256-<base64>` of `text`, as a CSP source expression.
fn csp_hash(text: &str) -> String {
    let digest = sha256::Hash::hash(text.as_bytes()).to_byte_array();
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// What a paywall page shows: one 402 challenge's data, handed to a [`Paywall::render`] hook
/// (and to the default page).
#[derive(Debug)]
pub struct PaywallPage<'a> {
    pub(crate) paywall: &'a Paywall,
    pub(crate) required: &'a PaymentRequired,
    pub(crate) invoice: &'a str,
    pub(crate) amount_msat: u64,
    pub(crate) payment_hash: [u8; 32],
    pub(crate) expires_in_secs: u64,
    pub(crate) expires_at_unix: u64,
    /// How long after its end the layer still takes the invoice's proof, in seconds.
    pub(crate) skew_secs: u64,
    pub(crate) network: Network,
    /// The values of the route's bound headers (`http:1`) as this request sent them: the page
    /// sends the same when it asks again with the payment.
    pub(crate) bound_headers: &'a [(String, String)],
}

impl PaywallPage<'_> {
    /// The page's title ([`Paywall::title`], default "Payment required").
    pub fn title(&self) -> &str {
        self.paywall.title.as_deref().unwrap_or(DEFAULT_TITLE)
    }

    /// Who sells ([`Paywall::operator`]), if set.
    pub fn operator(&self) -> Option<&str> {
        self.paywall.operator.as_deref()
    }

    /// The route's description ([`PriceTag::description`](crate::PriceTag::description)), empty
    /// when it has none.
    pub fn description(&self) -> &str {
        self.required.resource.description.as_deref().unwrap_or("")
    }

    /// The absolute URL of what is sold (the challenge's `resource.url`).
    pub fn resource_url(&self) -> &str {
        &self.required.resource.url
    }

    /// The price, in msat.
    pub fn amount_msat(&self) -> u64 {
        self.amount_msat
    }

    /// The price in sat as a person reads it: `10 sat`, `1,000 sat`, `10.5 sat`.
    pub fn price_text(&self) -> String {
        let sats = self.amount_msat / 1000;
        let msat = self.amount_msat % 1000;
        let whole = grouped(sats);
        if msat == 0 {
            format!("{whole} sat")
        } else {
            let fraction = format!("{msat:03}");
            format!("{whole}.{} sat", fraction.trim_end_matches('0'))
        }
    }

    /// The price in msat (`10,500 msat`) when it is not a whole number of sat, else `None`.
    pub fn msat_text(&self) -> Option<String> {
        (self.amount_msat % 1000 != 0).then(|| format!("{} msat", grouped(self.amount_msat)))
    }

    /// The BOLT11 invoice.
    pub fn invoice(&self) -> &str {
        self.invoice
    }

    /// The invoice's payment hash, 64 lowercase hex (what a paid answer of the poll names).
    pub fn payment_hash_hex(&self) -> String {
        self.payment_hash.to_lower_hex_string()
    }

    /// Seconds until the invoice expires, as of the 402.
    pub fn expires_in_secs(&self) -> u64 {
        self.expires_in_secs
    }

    /// When the invoice expires, in Unix seconds.
    pub fn expires_at_unix(&self) -> u64 {
        self.expires_at_unix
    }

    /// The network the invoice is on.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The x402 version 2 challenge, as in `PAYMENT-REQUIRED`.
    pub fn payment_required(&self) -> &PaymentRequired {
        self.required
    }

    /// The invoice as a QR code, an inline `<svg>` element (the `lightning:` URI in upper case,
    /// which wallets read and which packs tighter), scaled by its container's width. Encoded by
    /// the `fast_qr` crate (error correction M); drawn as one path of horizontal runs, with a
    /// quiet zone of four modules. Empty if the invoice is too long for a QR code.
    pub fn qr_svg(&self) -> String {
        const QUIET: usize = 4;
        let uri = format!("LIGHTNING:{}", self.invoice.to_ascii_uppercase());
        let Ok(code) = fast_qr::QRBuilder::new(uri.as_str())
            .ecl(fast_qr::ECL::M)
            .build()
        else {
            return String::new();
        };
        let width = code.size;
        let size = width + 2 * QUIET;
        let mut path = String::with_capacity(width * width);
        for y in 0..width {
            let row = &code[y];
            let mut x = 0;
            while x < width {
                if row[x].value() {
                    let run = row[x..].iter().take_while(|module| module.value()).count();
                    let _ = write!(path, "M{} {}h{run}v1h-{run}z", x + QUIET, y + QUIET);
                    x += run;
                } else {
                    x += 1;
                }
            }
        }
        format!(
            "<svg role=\"img\" aria-label=\"QR code of the Lightning invoice\" \
             viewBox=\"0 0 {size} {size}\" shape-rendering=\"crispEdges\">\
             <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>"
        )
    }

    /// What makes a page unlock by itself: the challenge and the page's facts as JSON data
    /// blocks, and the page's script (allowed by its hash in the default policy). The script
    /// uses the elements of these ids: `status` (what is happening), `countdown` (seconds
    /// left), `invoice` (a `<textarea>` with the invoice), `copy`, `pay-webln` and `reload`
    /// (buttons, `hidden` until the script shows them), and `content` (where what was bought
    /// is shown, `hidden`).
    pub fn unlocking_elements(&self) -> String {
        let facts = serde_json::json!({
            "paymentHash": self.payment_hash_hex(),
            "expiresIn": self.expires_in_secs,
            "graceSecs": self.skew_secs,
            "headers": self
                .bound_headers
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::from(value.clone())))
                .collect::<serde_json::Map<_, _>>(),
        });
        format!(
            "<script type=\"application/json\" id=\"x402-challenge\">{}</script>\n\
             <script type=\"application/json\" id=\"x402-paywall\">{}</script>\n\
             <script>{SCRIPT}</script>",
            json_in_html(&serde_json::to_value(self.required).unwrap_or_default()),
            json_in_html(&facts),
        )
    }

    /// The default page's `Content-Security-Policy`: `default-src 'self'`, the page's own
    /// script and style by their SHA-256 hashes, images from the page (`data:`, `blob:`) and
    /// its origin, `object-src 'none'`, `base-uri 'none'`, `form-action 'self'`,
    /// `frame-ancestors 'none'`.
    pub fn default_content_security_policy() -> &'static str {
        &DEFAULT_CSP
    }

    /// The default page, as HTML.
    pub fn default_html(&self) -> String {
        let mut html = String::with_capacity(24 * 1024);
        let title = escape_html(self.title());
        // Writing to a String cannot fail.
        let _ = write!(
            html,
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"referrer\" content=\"no-referrer\">\n\
             <link rel=\"icon\" href=\"data:,\">\n\
             <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
             <h1>{title}</h1>\n"
        );
        if let Some(operator) = self.operator() {
            let _ = writeln!(
                html,
                "<p class=\"operator\">Sold by {}</p>",
                escape_html(operator)
            );
        }
        if !self.description().is_empty() {
            let _ = writeln!(
                html,
                "<p class=\"what\">{}</p>",
                escape_html(self.description())
            );
        }
        let _ = write!(
            html,
            "<p class=\"price\"><strong id=\"price\">{}</strong>",
            escape_html(&self.price_text())
        );
        if let Some(msat) = self.msat_text() {
            let _ = write!(html, " <small>({})</small>", escape_html(&msat));
        }
        let invoice = escape_html(self.invoice);
        let _ = write!(
            html,
            "</p>\n<p class=\"expiry\">This invoice expires in <span id=\"countdown\">{secs} s</span> \
             (at {at} UTC).</p>\n\
             <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>\n\
             <button type=\"button\" id=\"reload\" hidden>Reload for a new invoice</button>\n\
             <div id=\"content\" hidden></div>\n\
             <p class=\"hint\">Pay this Lightning invoice with any wallet: scan the code, \
             open it in a wallet, or copy it. This page unlocks by itself once it is paid.</p>\n\
             <noscript><p class=\"hint\">JavaScript is off: this page shows the invoice, but \
             needs JavaScript to show what you buy once it is paid. Turn it on before you \
             pay.</p></noscript>\n\
             <figure id=\"qr\">{qr}</figure>\n\
             <div class=\"actions\">\n\
             <button type=\"button\" id=\"pay-webln\" hidden>Pay with a browser wallet</button>\n\
             <a class=\"button\" id=\"open-wallet\" href=\"lightning:{invoice}\">Open in a wallet</a>\n\
             <button type=\"button\" id=\"copy\" hidden>Copy invoice</button>\n\
             </div>\n\
             <div class=\"invoice\"><textarea id=\"invoice\" readonly rows=\"5\" \
             aria-label=\"Lightning invoice\">{invoice}</textarea></div>\n\
             {unlocking}\n</main>\n</body>\n</html>\n",
            qr = self.qr_svg(),
            secs = self.expires_in_secs,
            at = utc_time_of_day(self.expires_at_unix),
            unlocking = self.unlocking_elements(),
        );
        html
    }
}

/// `text` escaped for HTML text and attribute values: `&`, `<`, `>`, `"` and `'`.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// JSON inside a `<script type="application/json">`: `<`, `>` and `&` escaped as JSON escapes,
/// so that no text in it can close the element.
fn json_in_html(value: &serde_json::Value) -> String {
    serde_json::to_string(value)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `1,234,567`.
fn grouped(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `HH:MM:SS` of a Unix time, in UTC.
fn utc_time_of_day(unix: u64) -> String {
    let seconds = unix % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// `challenge` (the 402 every client gets) with the page as its body: `Content-Type: text/html;
/// charset=utf-8`, the page's `Content-Security-Policy`, `Vary: Accept`, `Cache-Control:
/// no-store`, `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`; its status and
/// payment headers untouched.
pub(crate) fn page_response<B: From<Bytes>>(
    challenge: Response<B>,
    page: &PaywallPage<'_>,
) -> Response<B> {
    let html = match &page.paywall.render {
        Some(render) => render(page),
        None => page.default_html(),
    };
    let (mut parts, _json) = challenge.into_parts();
    let headers = &mut parts.headers;
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(VARY, HeaderValue::from_static("Accept"));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    let policy = page
        .paywall
        .csp
        .as_deref()
        .unwrap_or_else(|| PaywallPage::default_content_security_policy());
    match HeaderValue::from_str(policy) {
        Ok(value) => {
            headers.insert(HeaderName::from_static("content-security-policy"), value);
        }
        // A policy that is not a header value (a line break): the strict default instead.
        Err(_) => {
            if let Ok(value) = HeaderValue::from_str(PaywallPage::default_content_security_policy())
            {
                headers.insert(HeaderName::from_static("content-security-policy"), value);
            }
        }
    }
    Response::from_parts(parts, B::from(Bytes::from(html)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_read_in_sat_and_in_msat_when_not_whole() {
        let paywall = Paywall::new();
        let required: PaymentRequired = serde_json::from_value(serde_json::json!({
            "x402Version": 2,
            "resource": {"url": "https://a.example/x"},
            "accepts": []
        }))
        .unwrap();
        let page = |amount_msat| PaywallPage {
            paywall: &paywall,
            required: &required,
            invoice: "lnbcrt1",
            amount_msat,
            payment_hash: [0; 32],
            expires_in_secs: 60,
            expires_at_unix: 0,
            skew_secs: 60,
            network: Network::Regtest,
            bound_headers: &[],
        };
        assert_eq!(page(10_000).price_text(), "10 sat");
        assert_eq!(page(10_000).msat_text(), None);
        assert_eq!(page(1_234_567_000).price_text(), "1,234,567 sat");
        assert_eq!(page(10_500).price_text(), "10.5 sat");
        assert_eq!(page(10_500).msat_text().as_deref(), Some("10,500 msat"));
        assert_eq!(page(1).price_text(), "0.001 sat");
        assert_eq!(page(250_010).price_text(), "250.01 sat");
    }

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape_html(r#"<b a="1">'&'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
        let json = json_in_html(&serde_json::json!({"d": "</script><!--&"}));
        assert!(!json.contains('<') && !json.contains('&'), "{json}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap()["d"],
            "</script><!--&"
        );
    }

    #[test]
    fn the_policy_names_the_script_and_style_by_hash() {
        let policy = PaywallPage::default_content_security_policy();
        assert!(policy.contains(&format!("script-src '{}'", csp_hash(SCRIPT))));
        assert!(policy.contains(&csp_hash(STYLE)));
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(999), "999");
        assert_eq!(utc_time_of_day(86_400 + 3_723), "01:02:03");
    }
}
