//! The browser paywall (feature `paywall`, on by default): a person who opens a priced route in a
//! browser gets a page to pay it, not a JSON 402 and a base64 header.
//!
//! A request to a priced `GET` (or `HEAD`) route whose `Accept` prefers `text/html` over JSON (a
//! browser's navigation; see below) gets the 402 as an HTML page: **the same status, the same
//! `PAYMENT-REQUIRED` header and the same single fresh invoice** as every other client, shown
//! as a QR code (rendered on the server, as SVG), its text with a copy button, the price (sat,
//! and msat when not whole), the route's description, the invoice's expiry counting down, and
//! a **Pay with a browser wallet** button (WebLN). The page unlocks by itself:
//!
//! - **with a browser wallet** (WebLN: `enable()`, `sendPayment(invoice)`), from the preimage
//!   the wallet returns;
//! - **paid from any other wallet** (a phone scanning the QR code), by polling the page's own
//!   URL with the header `X402-Invoice-State: <the invoice>`. The layer checks that the invoice
//!   is one of its receiver's (strict BOLT11 on its network, described by a request hash,
//!   payable to its payee), asks the receiver (the facilitator's `GET
//!   /invoices/{paymentHash}`, see [`receiver`](crate::receiver)) and answers `{"paymentHash",
//!   "state", "preimage"?}`, `state` being `open`, `paid` (with the preimage), `expired` (for
//!   good: past its end plus the clock skew) or `cancelled`. The page asks after 1 s, then waits
//!   1.5 times longer each time, up to 10 s, and stops when the invoice is paid, cancelled or
//!   expired for good.
//!
//! Either way the page builds the x402 version 2 payment from the preimage (`exact` on
//! `lnbtc`, the accepted requirements of the challenge it carries), requests its URL again
//! with `PAYMENT-SIGNATURE`, and shows what it bought: HTML replaces the page, JSON is
//! pretty-printed, an image is shown, text is shown as is, anything else is downloaded. It
//! sends the same proof again after a network error, or a 409 or 5xx that took no payment (no
//! `PAYMENT-RESPONSE`); an answer that took it is shown whatever its status (a proof serves once;
//! it is never paid twice). A browser wallet's proof that is refused leaves the page polling, in
//! case the wallet paid the invoice but handed back something else. Once the invoice's time is
//! up unpaid, it says **"This invoice expired: reload for a new invoice."**, and still unlocks
//! if a payment made in the last moments lands while the layer takes its proof (the clock skew
//! after the end).
//!
//! **What the polling reveals, to whom.** The preimage of a *paid* invoice of this layer's
//! receiver, to whoever holds the invoice: the person the page was served to, or anyone they
//! showed it to. The preimage buys only the one request the invoice is bound to (the `lnbtc`
//! request hash: method, URL, bound headers, body), once: whoever sends it first is served. The
//! layer asks its receiver at most once a second per invoice, whatever the polling (a poll in
//! between gets the last answer), and never about an invoice of another payee or network. A
//! poll needs no state of the instance that served the page: behind a load balancer, any
//! instance sharing the facilitator answers it.
//!
//! **Which requests get the page**: `GET` and `HEAD` requests whose `Accept` names `text/html`
//! itself and weighs it above `application/json` (RFC 9110 weights, the most specific range
//! deciding). `Accept: application/json`, `*/*`, `text/*` or no `Accept` at all get exactly
//! the JSON answer of the wire contract; so does every request carrying a payment, and every
//! route or facilitator that does not offer the `lnbtc` flow, and every route that binds a
//! header a page cannot send again itself (a credential, `Cookie`, `User-Agent`, `Referer`, the
//! `Sec-*` headers and the others the Fetch standard keeps to the browser). The seed flow (x402
//! version 1) is not offered on the page: a browser holds no account key. Answers that depend
//! on `Accept` say so with `Vary: Accept`.
//!
//! **On by default, and why.** The page changes nothing for a program: the same 402, the same
//! header, the same invoice, and only for requests that ask for HTML first, which API clients do
//! not. Without it, a person who follows a link to a priced route sees a JSON error with a
//! base64 header, which no person can pay. Its cost is about 0.36 ms per browser navigation to
//! a priced route, most of it the QR code (see the README's measured figures). Turn it off for
//! a layer with [`X402LayerBuilder::no_paywall`](crate::layer::X402LayerBuilder::no_paywall),
//! or for a route with [`PriceTag::no_paywall`](crate::PriceTag::no_paywall); give a layer or a
//! route its own title, operator name or page with [`Paywall`].
//!
//! **The page is self-contained**: no external script, style, font or image. Its
//! `Content-Security-Policy` allows only its own script and style, by their SHA-256 hashes
//! (`'unsafe-inline'` never), same-origin requests, and images from the page itself; it cannot
//! be framed. Without JavaScript it still shows the invoice, its QR code and its price, and
//! says that JavaScript is needed to unlock the content once paid. A bought HTML page is written
//! into the paywall's document, so it runs under the paywall's policy: its same-origin styles
//! and images load, its own scripts do not.
//!
//! ```
//! use x402_lightning::mock::MockFacilitator;
//! use x402_lightning::paywall::Paywall;
//! use x402_lightning::{Network, Price, PriceTag, X402Layer};
//!
//! # fn main() -> Result<(), x402_lightning::ConfigError> {
//! let payments = X402Layer::builder(MockFacilitator::new(), Network::Regtest)
//!     .public_base_url("https://weather.example")
//!     .paywall(Paywall::new().title("Weather, by the minute").operator("Example Weather Ltd"))
//!     .route("GET /weather", PriceTag::fixed(Price::sats(10)).description("Today's forecast"))
//!     // An API route: JSON for everyone, browsers included.
//!     .route("GET /api/raw", PriceTag::fixed(Price::sats(1)).no_paywall())
//!     .build()?;
//! # let _ = payments;
//! # Ok(())
//! # }
//! ```

pub(crate) mod accept;
mod page;

use std::fmt;
use std::sync::Arc;

pub use self::page::{INVOICE_STATE_HEADER, PaywallPage, escape_html};
pub(crate) use self::page::{POLL_INTERVAL, page_response};

/// Renders a page of one's own from a challenge's data; see [`Paywall::render`].
type RenderHook = Arc<dyn Fn(&PaywallPage<'_>) -> String + Send + Sync>;

/// How a layer's or a route's paywall page looks: a title, the operator's name, or a page of
/// one's own. [`Paywall::new`] is the default page (title "Payment required").
#[derive(Clone, Default)]
#[must_use]
pub struct Paywall {
    pub(crate) title: Option<String>,
    pub(crate) operator: Option<String>,
    pub(crate) render: Option<RenderHook>,
    pub(crate) csp: Option<String>,
}

impl Paywall {
    /// The default page.
    pub fn new() -> Self {
        Self::default()
    }

    /// The page's title and heading (default "Payment required").
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Who sells: shown under the title ("Sold by …").
    pub fn operator(mut self, operator: impl Into<String>) -> Self {
        self.operator = Some(operator.into());
        self
    }

    /// Renders the whole page with `render` instead of the default, from the challenge's data
    /// ([`PaywallPage`]: price, description, invoice, its QR code as SVG, its expiry, the x402
    /// challenge). The layer still sets the status (402), `PAYMENT-REQUIRED`, `Content-Type:
    /// text/html; charset=utf-8`, `Cache-Control: no-store` and the `Content-Security-Policy`.
    /// To keep the page unlocking by itself, include [`PaywallPage::unlocking_elements`] and the
    /// elements its script uses (see there); escape every text you insert with
    /// [`escape_html`]. A script of your own needs a policy of your own:
    /// [`content_security_policy`](Self::content_security_policy).
    ///
    /// ```
    /// use x402_lightning::paywall::{Paywall, escape_html};
    ///
    /// let paywall = Paywall::new().render(|page| {
    ///     format!(
    ///         "<!doctype html><title>Pay {price}</title><h1>{price}</h1>{qr}<p>{invoice}</p>",
    ///         price = escape_html(&page.price_text()),
    ///         qr = page.qr_svg(),
    ///         invoice = escape_html(page.invoice()),
    ///     )
    /// });
    /// # let _ = paywall;
    /// ```
    pub fn render<R>(mut self, render: R) -> Self
    where
        R: Fn(&PaywallPage<'_>) -> String + Send + Sync + 'static,
    {
        self.render = Some(Arc::new(render));
        self
    }

    /// Replaces the page's `Content-Security-Policy` (for a [`render`](Self::render) hook whose
    /// page needs more than the default allows; the default is
    /// [`PaywallPage::default_content_security_policy`]).
    pub fn content_security_policy(mut self, policy: impl Into<String>) -> Self {
        self.csp = Some(policy.into());
        self
    }
}

impl fmt::Debug for Paywall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paywall")
            .field("title", &self.title)
            .field("operator", &self.operator)
            .field("render", &self.render.as_ref().map(|_| "<hook>"))
            .field("csp", &self.csp)
            .finish()
    }
}

/// A route's paywall setting: the layer's, none, or its own.
#[derive(Clone, Debug, Default)]
pub(crate) enum RoutePaywall {
    /// The layer's setting.
    #[default]
    Inherit,
    /// No page on this route.
    Off,
    /// This page on this route.
    On(Arc<Paywall>),
}
