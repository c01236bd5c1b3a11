//! Prices and the route table: which requests cost what.
//!
//! A route is declared as `"METHOD /path"` (or `"/path"` for every method) with a
//! [`PriceTag`]: a fixed [`Price`] or a [`DynamicPrice`] callback, plus what the payment buys
//! (description, MIME type, timeout) and when to settle. Paths use axum 0.8's syntax: `{id}`
//! matches one segment, a trailing `{*rest}` or `/*` matches the rest of the path; anything
//! axum would not route (`:id`, a `*` elsewhere, a query) is refused when the layer is built.
//!
//! Patterns match the raw request path exactly as axum's router does: no percent-decoding, no
//! trailing-slash or case folding, the most specific pattern wins. Where the rules differ, the
//! table errs on the side of charging:
//!
//! - a `GET` price also covers `HEAD`, because axum serves `HEAD` with the `GET` handler;
//! - a trailing `/*` also covers its bare prefix (`/premium` and `/premium/` for
//!   `/premium/*`), which `nest_service` serves; a trailing `{*rest}` keeps the meaning of
//!   axum's `route` (at least one character after the slash);
//! - a request target that is not a path (`*`, `host:port`) reaches axum's fallback, so it is
//!   looked up under the root, where a root wildcard prices it;
//! - a method is looked up among all patterns that price it: pricing `POST /api/expensive`
//!   leaves `GET /api/expensive` under a wider `/api/*` price, not free.

pub mod check;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use http::request::Parts;
use serde::de::DeserializeOwned;

use self::check::RequestCheck;
use crate::layer::Flows;
use crate::lnbtc::binding::{BindingError, BoundHeaders};

/// The largest price the layer accepts: 21 million bitcoin, in msat.
pub const MAX_PRICE_MSAT: u64 = 21_000_000 * 100_000_000 * 1_000;

/// The default `maxTimeoutSeconds` of a route.
pub const DEFAULT_MAX_TIMEOUT_SECONDS: u64 = 60;

/// An amount to pay, in millisatoshis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price {
    msat: u64,
}

impl Price {
    /// A price of `sats` satoshis (saturating; a price over [`MAX_PRICE_MSAT`] fails validation).
    pub const fn sats(sats: u64) -> Self {
        Self {
            msat: sats.saturating_mul(1_000),
        }
    }

    /// A price of `msat` millisatoshis.
    pub const fn msat(msat: u64) -> Self {
        Self { msat }
    }

    /// The price in millisatoshis.
    pub const fn as_msat(self) -> u64 {
        self.msat
    }

    /// Checks that the price is payable: more than zero and at most [`MAX_PRICE_MSAT`].
    pub fn validate(self) -> Result<Self, InvalidPrice> {
        match self.msat {
            0 => Err(InvalidPrice::Zero),
            msat if msat > MAX_PRICE_MSAT => Err(InvalidPrice::TooLarge(msat)),
            _ => Ok(self),
        }
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} msat", self.msat)
    }
}

/// Why a price cannot be charged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPrice {
    /// A price of zero: leave the route unpriced instead.
    #[error("price is zero; leave the route unpriced to make it free")]
    Zero,
    /// More than all the bitcoin there will ever be.
    #[error("price of {0} msat is over 21 million BTC")]
    TooLarge(u64),
    /// `maxTimeoutSeconds` of zero: the invoice could never be paid.
    #[error("max_timeout_seconds is zero; an invoice must be payable for at least a second")]
    MaxTimeoutZero,
    /// Bound header names that `http:1` refuses.
    #[error("bound headers: {0}")]
    BoundHeaders(BindingError),
}

/// A future answering a [`DynamicPrice`] question.
pub type PriceFuture = Pin<Box<dyn Future<Output = Option<Price>> + Send>>;

/// A price decided per request: sees the request head (method, URI, headers, extensions) and
/// returns the price, or `None` for "free this time" (e.g. a free tier).
///
/// Implemented for every `Fn(&Parts) -> impl Future<Output = Option<Price>>` closure; clone what
/// the future needs out of the head before the `async` block. Anything the client sends can be
/// forged: grant a free request only on what the server can check (e.g. a verified API key).
///
/// ```
/// use x402_lightning::{Price, PriceTag};
///
/// // Full-resolution images cost more; small previews are free.
/// let tag = PriceTag::dynamic(|head: &http::request::Parts| {
///     let query = head.uri.query().unwrap_or_default();
///     let price = if query.contains("size=full") {
///         Some(Price::sats(50))
///     } else if query.contains("size=preview") {
///         None
///     } else {
///         Some(Price::sats(10))
///     };
///     async move { price }
/// });
/// # let _ = tag;
/// ```
pub trait DynamicPrice: Send + Sync + 'static {
    /// The price of this request, or `None` when it is free.
    fn price(&self, head: &Parts) -> PriceFuture;
}

impl<F, Fut> DynamicPrice for F
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Price>> + Send + 'static,
{
    fn price(&self, head: &Parts) -> PriceFuture {
        Box::pin(self(head))
    }
}

/// A price decided per request from its head **and its body**, for a route whose price depends
/// on what is sent (e.g. by the size of a document to summarize): the layer reads the whole body
/// first (up to its body limit; over it, 413 and nothing minted), so the price never depends on
/// a `Content-Length` that a chunked request does not send, and hands the same bytes to the
/// handler. `None` means "free this time".
///
/// Implemented for every `Fn(&Parts, &Bytes) -> impl Future<Output = Option<Price>>` closure.
///
/// ```
/// use x402_lightning::{Price, PriceTag};
///
/// // 1 sat per started KiB of the document, at least 10 sat.
/// let tag = PriceTag::dynamic_with_body(|_head: &http::request::Parts, body: &bytes::Bytes| {
///     let kib = u64::try_from(body.len().div_ceil(1024)).unwrap_or(u64::MAX);
///     async move { Some(Price::sats(kib.max(10))) }
/// });
/// # let _ = tag;
/// ```
pub trait DynamicBodyPrice: Send + Sync + 'static {
    /// The price of this request, or `None` when it is free.
    fn price(&self, head: &Parts, body: &Bytes) -> PriceFuture;
}

impl<F, Fut> DynamicBodyPrice for F
where
    F: Fn(&Parts, &Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Price>> + Send + 'static,
{
    fn price(&self, head: &Parts, body: &Bytes) -> PriceFuture {
        Box::pin(self(head, body))
    }
}

/// When the facilitator is asked to settle a route's payment in the seed flow. The `lnbtc` flow
/// always settles before the handler runs (upstream's `upfront` flow): there, a handler's 4xx
/// or 5xx is paid for, whatever the mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SettleMode {
    /// Run the handler on a verified payment, then settle; the response waits for the settle
    /// and is dropped unread if the settle fails. **A handler answer ≥ 400 is not settled**:
    /// a body the handler rejects (axum's 422), a 404 or a 500 costs the client nothing.
    #[default]
    AfterHandler,
    /// Settle before the handler runs, for work that must not happen unpaid; a failed settle
    /// means the handler never runs. **The payment is taken whatever the handler then
    /// answers**: a JSON body it rejects with 422, a 404, a 500 are all paid for (and carry
    /// `X-PAYMENT-RESPONSE`). Use it only for handlers that cannot fail on the client's input.
    BeforeHandler,
}

/// The price source of a route.
#[derive(Clone)]
pub(crate) enum PriceSource {
    Fixed(Price),
    Dynamic(Arc<dyn DynamicPrice>),
    DynamicWithBody(Arc<dyn DynamicBodyPrice>),
}

impl fmt::Debug for PriceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceSource::Fixed(price) => f.debug_tuple("Fixed").field(price).finish(),
            PriceSource::Dynamic(_) => f.write_str("Dynamic(..)"),
            PriceSource::DynamicWithBody(_) => f.write_str("DynamicWithBody(..)"),
        }
    }
}

/// What a route costs and what the payment buys.
///
/// Built from a [`Price`] (`Price::sats(10).into()`) or a [`DynamicPrice`], then refined with
/// `#[must_use]` setters.
#[derive(Clone)]
pub struct PriceTag {
    pub(crate) source: PriceSource,
    pub(crate) description: String,
    pub(crate) mime_type: String,
    pub(crate) max_timeout_seconds: u64,
    pub(crate) output_schema: Option<serde_json::Value>,
    pub(crate) settle: SettleMode,
    /// The route as declared in a price table (`"GET /weather"`), for hooks and logs.
    pub(crate) route: Option<Arc<str>>,
    /// The headers an `lnbtc` payment binds (`http:1` `requestBindingParams.headers`).
    pub(crate) bound_headers: BoundHeaders,
    /// Why the bound header names given are unusable, reported by `validate`.
    bound_headers_error: Option<BindingError>,
    /// The flows this route offers; `None`: the layer's.
    pub(crate) flows: Option<Flows>,
    /// What the route refuses before charging.
    pub(crate) request_check: Option<Arc<dyn RequestCheck>>,
    /// The route's paywall page: the layer's, none, or its own.
    #[cfg(feature = "paywall")]
    pub(crate) paywall: crate::paywall::RoutePaywall,
}

impl fmt::Debug for PriceTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriceTag")
            .field("source", &self.source)
            .field("description", &self.description)
            .field("mime_type", &self.mime_type)
            .field("max_timeout_seconds", &self.max_timeout_seconds)
            .field("settle", &self.settle)
            .field("route", &self.route)
            .field("bound_headers", &self.bound_headers)
            .field("flows", &self.flows)
            .field("checks_requests", &self.request_check.is_some())
            .field("paywall", &self.paywall_debug())
            .finish_non_exhaustive()
    }
}

impl PriceTag {
    /// A route that always costs `price`.
    pub fn fixed(price: Price) -> Self {
        Self::with_source(PriceSource::Fixed(price))
    }

    /// A route whose price is decided per request by `price`, from the request head.
    pub fn dynamic(price: impl DynamicPrice) -> Self {
        Self::with_source(PriceSource::Dynamic(Arc::new(price)))
    }

    /// A route whose price is decided per request by `price`, from the request head and its
    /// whole body (see [`DynamicBodyPrice`]): the layer reads the body before pricing.
    pub fn dynamic_with_body(price: impl DynamicBodyPrice) -> Self {
        Self::with_source(PriceSource::DynamicWithBody(Arc::new(price)))
    }

    fn with_source(source: PriceSource) -> Self {
        Self {
            source,
            description: String::new(),
            mime_type: String::new(),
            max_timeout_seconds: DEFAULT_MAX_TIMEOUT_SECONDS,
            output_schema: None,
            settle: SettleMode::AfterHandler,
            route: None,
            bound_headers: BoundHeaders::default(),
            bound_headers_error: None,
            flows: None,
            request_check: None,
            #[cfg(feature = "paywall")]
            paywall: crate::paywall::RoutePaywall::Inherit,
        }
    }

    #[cfg(feature = "paywall")]
    fn paywall_debug(&self) -> &crate::paywall::RoutePaywall {
        &self.paywall
    }

    #[cfg(not(feature = "paywall"))]
    fn paywall_debug(&self) -> &'static str {
        "off (feature)"
    }

    /// What the payment buys; shown to the client and written into the invoice.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// The MIME type of the paid response.
    #[must_use]
    pub fn mime_type(mut self, mime_type: impl Into<String>) -> Self {
        self.mime_type = mime_type.into();
        self
    }

    /// The `maxTimeoutSeconds` announced to the client (default 60).
    #[must_use]
    pub fn max_timeout_seconds(mut self, seconds: u64) -> Self {
        self.max_timeout_seconds = seconds;
        self
    }

    /// A description of the paid response's shape, any JSON (`outputSchema`).
    #[must_use]
    pub fn output_schema(mut self, schema: serde_json::Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// When to settle (default [`SettleMode::AfterHandler`]).
    #[must_use]
    pub fn settle(mut self, mode: SettleMode) -> Self {
        self.settle = mode;
        self
    }

    /// Settle before the handler runs ([`SettleMode::BeforeHandler`]): the client is charged
    /// as soon as its payment verifies, **even if the handler then answers 4xx or 5xx** (a
    /// request body the handler rejects is paid for). Without it, the layer settles only after
    /// the handler answered < 400.
    #[must_use]
    pub fn settle_before_handler(self) -> Self {
        self.settle(SettleMode::BeforeHandler)
    }

    /// The request headers an `lnbtc` payment for this route is bound to (`http:1`
    /// `requestBindingParams.headers`, upstream `scheme_exact_lnbtc.md`): every header that
    /// changes what is bought or how the body is read, e.g. `["content-type"]` for a JSON
    /// POST. Names are case-insensitive: they are lowercased, sorted and deduplicated as the
    /// wire wants them; a name that is not an HTTP field name, or `payment-signature`, fails
    /// when the layer is built. Default: none. The seed flow ignores it.
    #[must_use]
    pub fn bind_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|name| name.into().to_ascii_lowercase())
            .collect();
        names.sort_unstable();
        names.dedup();
        match BoundHeaders::new(names) {
            Ok(bound) => {
                self.bound_headers = bound;
                self.bound_headers_error = None;
            }
            Err(err) => self.bound_headers_error = Some(err),
        }
        self
    }

    /// Refuses a request with `check`'s 4xx before anything is minted or charged, in either
    /// flow (see [`check`]): the layer reads the whole body first (up to its body limit), and
    /// the handler gets the same bytes. Setting it again replaces it.
    #[must_use]
    pub fn check_request(mut self, check: impl RequestCheck) -> Self {
        self.request_check = Some(Arc::new(check));
        self
    }

    /// Refuses, before anything is minted or charged, a request whose body is not JSON that
    /// reads as `T`, with the status axum's `Json<T>` extractor would answer (415, 400 or
    /// 422): `check_request(check::json::<T>())`. For a route whose handler takes `Json<T>`, so
    /// that a body it would reject is never paid for, in either flow.
    #[must_use]
    pub fn require_json<T: DeserializeOwned + 'static>(self) -> Self {
        self.check_request(check::json::<T>())
    }

    /// Whether the layer reads the whole body before charging, for a route offering `flows`:
    /// to bind an `lnbtc` payment to it, for a price that reads it, or for a request check.
    pub(crate) fn reads_body(&self, flows: Flows) -> bool {
        flows.lnbtc()
            || self.request_check.is_some()
            || matches!(self.source, PriceSource::DynamicWithBody(_))
    }

    /// The payment flows this route offers, instead of the layer's
    /// ([`X402LayerBuilder::flows`](crate::layer::X402LayerBuilder::flows)).
    #[must_use]
    pub fn flows(mut self, flows: Flows) -> Self {
        self.flows = Some(flows);
        self
    }

    /// This route's paywall page, instead of the layer's
    /// ([`X402LayerBuilder::paywall`](crate::layer::X402LayerBuilder::paywall)); on this route
    /// even when the layer has none. See [`paywall`](crate::paywall).
    #[cfg(feature = "paywall")]
    #[cfg_attr(docsrs, doc(cfg(feature = "paywall")))]
    #[must_use]
    pub fn paywall(mut self, paywall: crate::paywall::Paywall) -> Self {
        self.paywall = crate::paywall::RoutePaywall::On(Arc::new(paywall));
        self
    }

    /// No paywall page on this route: browsers get the JSON 402 like every client (for an API
    /// route a browser should never be asked to pay by a person).
    #[cfg(feature = "paywall")]
    #[cfg_attr(docsrs, doc(cfg(feature = "paywall")))]
    #[must_use]
    pub fn no_paywall(mut self) -> Self {
        self.paywall = crate::paywall::RoutePaywall::Off;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), InvalidPrice> {
        if let Some(err) = &self.bound_headers_error {
            return Err(InvalidPrice::BoundHeaders(err.clone()));
        }
        if self.max_timeout_seconds == 0 {
            return Err(InvalidPrice::MaxTimeoutZero);
        }
        match &self.source {
            PriceSource::Fixed(price) => price.validate().map(drop),
            PriceSource::Dynamic(_) | PriceSource::DynamicWithBody(_) => Ok(()),
        }
    }
}

impl From<Price> for PriceTag {
    fn from(price: Price) -> Self {
        Self::fixed(price)
    }
}

/// A route declaration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The pattern is not `"METHOD /path"` or `"/path"`, or its path is not a valid route.
    #[error("route {route:?}: {why}")]
    BadPattern {
        /// The route as declared.
        route: String,
        /// What is wrong with it.
        why: String,
    },
    /// The price cannot be charged.
    #[error("route {route:?}: {source}")]
    BadPrice {
        /// The route as declared.
        route: String,
        /// What is wrong with the price.
        source: InvalidPrice,
    },
    /// The same method and path are priced twice.
    #[error("route {route:?} is priced twice")]
    Duplicate {
        /// The route as declared the second time.
        route: String,
    },
}

/// The name given to the catch-all parameter a trailing `/*` stands for.
const TRAILING_WILDCARD: &str = "{*x402_rest}";

/// One declared route, its path in matchit's syntax.
#[derive(Debug)]
struct Declared {
    route: String,
    method: Option<Method>,
    path: String,
    tag: Arc<PriceTag>,
}

/// Collects routes for a [`RouteTable`], refusing bad patterns, bad prices and duplicates.
#[derive(Debug, Default)]
pub(crate) struct RouteTableBuilder {
    declared: Vec<Declared>,
}

impl RouteTableBuilder {
    /// The price tags declared so far.
    pub(crate) fn tags(&self) -> impl Iterator<Item = &PriceTag> {
        self.declared.iter().map(|declared| &*declared.tag)
    }

    /// Adds a route; fails on a bad pattern, a bad price or a duplicate.
    pub(crate) fn add(&mut self, route: &str, mut tag: PriceTag) -> Result<(), RouteError> {
        let bad = |why: &str| RouteError::BadPattern {
            route: route.to_owned(),
            why: why.to_owned(),
        };
        tag.validate().map_err(|source| RouteError::BadPrice {
            route: route.to_owned(),
            source,
        })?;
        let (method, path) = parse_route(route).map_err(bad)?;
        let path = matchit_path(path).map_err(bad)?;
        // Check the pattern alone now, so the error names this route.
        matchit::Router::new()
            .insert(path.clone(), ())
            .map_err(|err| bad(&err.to_string()))?;
        if self
            .declared
            .iter()
            .any(|other| other.method == method && other.path == path)
        {
            return Err(RouteError::Duplicate {
                route: route.to_owned(),
            });
        }
        tag.route = Some(Arc::from(route));
        self.declared.push(Declared {
            route: route.to_owned(),
            method,
            path,
            tag: Arc::new(tag),
        });
        Ok(())
    }

    /// How many routes were declared.
    pub(crate) fn len(&self) -> usize {
        self.declared.len()
    }

    /// Builds one path router per declared method (plus `HEAD` when `GET` is priced) and one
    /// for every other method, so a method never falls through to a less specific pattern's
    /// absence: each router holds every pattern that prices its method.
    ///
    /// Fails when two patterns conflict (e.g. `{id}` and `{name}` in one place).
    pub(crate) fn build(self) -> Result<RouteTable, RouteError> {
        let mut methods: Vec<Method> = Vec::new();
        for method in self
            .declared
            .iter()
            .filter_map(|route| route.method.clone())
        {
            let implied_head = (method == Method::GET).then_some(Method::HEAD);
            for method in std::iter::once(method).chain(implied_head) {
                if !methods.contains(&method) {
                    methods.push(method);
                }
            }
        }
        let per_method: Vec<(Method, PathRouter)> = methods
            .into_iter()
            .map(|method| {
                let mut sources = vec![Some(method.clone())];
                if method == Method::HEAD {
                    sources.push(Some(Method::GET));
                }
                sources.push(None);
                Ok((method, self.router_of(&sources)?))
            })
            .collect::<Result<_, RouteError>>()?;
        let other_methods = self.router_of(&[None])?;
        let first_bytes = std::iter::once(&other_methods)
            .chain(per_method.iter().map(|(_, router)| router))
            .flat_map(|router| &router.paths)
            .fold(FirstBytes::default(), |mut first_bytes, path| {
                first_bytes.add(path);
                first_bytes
            });
        Ok(RouteTable {
            per_method,
            other_methods,
            first_bytes,
            len: self.declared.len(),
        })
    }

    /// The routes of `sources` (a method, or `None` for every-method routes), the earlier
    /// source winning a path both price; a trailing wildcard also prices its bare prefix (with
    /// and without `/`), as `nest_service` serves both, unless a route prices it explicitly.
    fn router_of(&self, sources: &[Option<Method>]) -> Result<PathRouter, RouteError> {
        let mut router = PathRouter::default();
        let routes = sources.iter().flat_map(|source| {
            self.declared
                .iter()
                .filter(move |route| route.method == *source)
        });
        let mut implied = Vec::new();
        for route in routes {
            router.insert(&route.path, route)?;
            implied.extend(wildcard_prefixes(&route.path).map(|prefix| (prefix, route)));
        }
        for (prefix, route) in implied {
            // A conflict means another priced pattern of this method covers that shape.
            let _ = router.insert(&prefix, route);
        }
        Ok(router)
    }
}

/// A path router holding each path once.
#[derive(Clone, Default)]
struct PathRouter {
    router: matchit::Router<Arc<PriceTag>>,
    paths: Vec<String>,
}

impl PathRouter {
    /// Adds `path` for `route`, unless an earlier route already prices that exact path.
    fn insert(&mut self, path: &str, route: &Declared) -> Result<(), RouteError> {
        if self.paths.iter().any(|known| known == path) {
            return Ok(());
        }
        self.router
            .insert(path, Arc::clone(&route.tag))
            .map_err(|err| RouteError::BadPattern {
                route: route.route.clone(),
                why: err.to_string().replace(TRAILING_WILDCARD, "*"),
            })?;
        self.paths.push(path.to_owned());
        Ok(())
    }
}

/// Method + path pattern → price tag, matched like axum's router.
#[derive(Clone, Default)]
pub(crate) struct RouteTable {
    per_method: Vec<(Method, PathRouter)>,
    other_methods: PathRouter,
    first_bytes: FirstBytes,
    len: usize,
}

/// The bytes that follow the leading `/` in the priced patterns, so that a request whose path
/// starts otherwise is known free without walking a router: the common case of a free route
/// costs a bit test. A pattern with a parameter or wildcard right after the `/` could match
/// anything, and turns the filter off.
#[derive(Clone, Debug, Default)]
struct FirstBytes {
    /// One bit per byte value.
    bytes: [u64; 4],
    /// `/` itself is priced.
    root: bool,
    /// Some pattern matches any first segment.
    any: bool,
}

impl FirstBytes {
    /// Counts `path` (matchit syntax) in.
    fn add(&mut self, path: &str) {
        match path.as_bytes().get(1) {
            None => self.root = true,
            Some(b'{') => self.any = true,
            Some(&byte) => self.bytes[usize::from(byte >> 6)] |= 1 << (byte & 63),
        }
    }

    /// Whether some priced pattern could match `path` (which starts with `/`).
    fn may_match(&self, path: &str) -> bool {
        self.any
            || match path.as_bytes().get(1) {
                None => self.root,
                Some(&byte) => self.bytes[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0,
            }
    }
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("priced_routes", &self.len)
            .finish_non_exhaustive()
    }
}

impl RouteTable {
    /// The price tag of a request, if its route is priced.
    ///
    /// A request target that is not a path (`example.com:443`, `*`) reaches axum's fallback,
    /// so it is looked up as a path under the root, where a root wildcard prices it.
    pub(crate) fn find(&self, method: &Method, path: &str) -> Option<&Arc<PriceTag>> {
        if !path.starts_with('/') {
            return self.find(method, &format!("/{path}"));
        }
        if !self.first_bytes.may_match(path) {
            return None;
        }
        let router = self
            .per_method
            .iter()
            .find(|(priced, _)| priced == method)
            .map_or(&self.other_methods, |(_, router)| router);
        router.router.at(path).ok().map(|found| found.value)
    }
}

/// Checks a declared path and turns a trailing `/*` into a named catch-all.
fn matchit_path(path: &str) -> Result<String, &'static str> {
    if path.contains(['?', '#']) {
        return Err("a route is a path, without query or fragment");
    }
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate() {
        if segment.starts_with(':') {
            return Err("`:name` is not axum 0.8 syntax; write `{name}`");
        }
        let trailing_star = *segment == "*" && index == last;
        if segment.contains('*') && !trailing_star && !segment.starts_with("{*") {
            return Err("`*` is only allowed as a trailing `/*` or a trailing `{*name}`");
        }
    }
    Ok(match path.strip_suffix("/*") {
        Some(prefix) => format!("{prefix}/{TRAILING_WILDCARD}"),
        None => path.to_owned(),
    })
}

/// The bare prefix of a path ending in a trailing `/*`, with and without its slash (a
/// `{*name}` catch-all keeps axum's meaning: at least one character after the slash).
fn wildcard_prefixes(path: &str) -> impl Iterator<Item = String> + '_ {
    let prefix = path
        .strip_suffix(TRAILING_WILDCARD)
        .map(|prefix| prefix.strip_suffix('/').unwrap_or(prefix));
    prefix.into_iter().flat_map(|prefix| {
        let bare = (!prefix.is_empty()).then(|| prefix.to_owned());
        bare.into_iter()
            .chain(std::iter::once(format!("{prefix}/")))
    })
}

/// Splits `"METHOD /path"` or `"/path"`.
fn parse_route(route: &str) -> Result<(Option<Method>, &str), &'static str> {
    let route = route.trim();
    let (method, path) = match route.split_once(char::is_whitespace) {
        Some((method, path)) => (Some(method), path.trim_start()),
        None => (None, route),
    };
    if !path.starts_with('/') {
        return Err("the path must start with '/' (write \"GET /path\" or \"/path\")");
    }
    if path.contains(char::is_whitespace) {
        return Err("the path must not contain whitespace");
    }
    let method = match method {
        None => None,
        Some(method) if !method.bytes().any(|b| b.is_ascii_lowercase()) => Some(
            Method::from_bytes(method.as_bytes()).map_err(|_| "the method is not a valid token")?,
        ),
        Some(_) => return Err("the method must be upper case, e.g. GET"),
    };
    if method == Some(Method::OPTIONS) {
        return Err("OPTIONS requests are CORS preflights and always free");
    }
    Ok((method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[&str]) -> Result<RouteTable, RouteError> {
        let mut builder = RouteTableBuilder::default();
        for route in routes {
            builder.add(route, Price::sats(1).into())?;
        }
        builder.build()
    }

    fn priced(table: &RouteTable, method: Method, path: &str) -> bool {
        table.find(&method, path).is_some()
    }

    #[test]
    fn method_and_path_must_both_match() {
        let table = table(&["GET /weather"]).unwrap();
        assert!(priced(&table, Method::GET, "/weather"));
        assert!(priced(&table, Method::HEAD, "/weather"));
        assert!(!priced(&table, Method::POST, "/weather"));
        assert!(!priced(&table, Method::GET, "/weather/"));
        assert!(!priced(&table, Method::GET, "/Weather"));
        assert!(!priced(&table, Method::GET, "/weath%65r"));
    }

    #[test]
    fn parameters_and_wildcards_match_like_axum() {
        let table = table(&["GET /items/{id}", "GET /premium/*", "/files/{*path}"]).unwrap();
        assert!(priced(&table, Method::GET, "/items/42"));
        assert!(!priced(&table, Method::GET, "/items/42/more"));
        assert!(!priced(&table, Method::GET, "/items"));
        assert!(priced(&table, Method::GET, "/premium/a"));
        assert!(priced(&table, Method::GET, "/premium/a/b/c"));
        assert!(priced(&table, Method::DELETE, "/files/x"));
        assert!(!priced(&table, Method::GET, "/premiumx"));
        // A trailing `/*` also covers the bare prefix, as `nest_service` serves it...
        assert!(priced(&table, Method::GET, "/premium/"));
        assert!(priced(&table, Method::GET, "/premium"));
        // ...while `{*name}` keeps the meaning of axum's `route`: a landing page stays free.
        assert!(!priced(&table, Method::PUT, "/files"));
        assert!(!priced(&table, Method::PUT, "/files/"));
        assert!(!priced(&table, Method::GET, "/item"));
    }

    #[test]
    fn targets_that_are_not_paths_are_priced_by_a_root_wildcard() {
        let table = table(&["/*"]).unwrap();
        for target in ["", "*", "example.com:443"] {
            assert!(priced(&table, Method::GET, target), "{target:?}");
        }
        let table = self::table(&["GET /weather"]).unwrap();
        assert!(!priced(&table, Method::GET, "example.com:443"));
    }

    #[test]
    fn the_first_byte_filter_never_frees_a_priced_path() {
        let routes = [
            "GET /weather",
            "GET /premium/*",
            "POST /ai/infer",
            "/files/{*path}",
            "GET /",
            "HEAD /h",
        ];
        let filtered = table(&routes).unwrap();
        let mut unfiltered = table(&routes).unwrap();
        unfiltered.first_bytes.any = true;
        let paths = [
            "/",
            "/weather",
            "/weatherx",
            "/w",
            "/premium",
            "/premium/",
            "/premium/a",
            "/ai/infer",
            "/files/x",
            "/files",
            "/health",
            "/h",
            "/x",
            "/%77eather",
            "/Weather",
            "//weather",
        ];
        for method in [Method::GET, Method::HEAD, Method::POST, Method::PUT] {
            for path in paths {
                assert_eq!(
                    filtered.find(&method, path).is_some(),
                    unfiltered.find(&method, path).is_some(),
                    "{method} {path}"
                );
            }
        }
        assert!(filtered.find(&Method::GET, "/health").is_none());
        assert!(filtered.find(&Method::GET, "/premium").is_some());
        // A parameter right after the root turns the filter off.
        let any = table(&["GET /{id}"]).unwrap();
        assert!(any.first_bytes.any);
        assert!(any.find(&Method::GET, "/anything").is_some());
    }

    #[test]
    fn routes_axum_accepts_together_build_together() {
        table(&["GET /items/{id}", "GET /items/{item}/*"]).unwrap();
        table(&["GET /", "/*"]).unwrap();
        table(&["GET /premium", "GET /premium/*"]).unwrap();
        table(&["M-SEARCH /upnp"]).unwrap();
    }

    #[test]
    fn a_method_priced_on_one_path_does_not_free_other_methods_of_a_wider_pattern() {
        let mut builder = RouteTableBuilder::default();
        builder.add("/api/*", Price::sats(1).into()).unwrap();
        builder
            .add("POST /api/expensive", Price::sats(1_000).into())
            .unwrap();
        builder
            .add("GET /reports/{id}", Price::sats(2).into())
            .unwrap();
        builder
            .add("POST /reports/export", Price::sats(3).into())
            .unwrap();
        let table = builder.build().unwrap();
        let price = |method: Method, path| match table.find(&method, path).map(|tag| &tag.source) {
            Some(PriceSource::Fixed(price)) => Some(price.as_msat()),
            _ => None,
        };
        assert_eq!(price(Method::POST, "/api/expensive"), Some(1_000_000));
        assert_eq!(price(Method::GET, "/api/expensive"), Some(1_000));
        assert_eq!(price(Method::PUT, "/api/expensive"), Some(1_000));
        assert_eq!(price(Method::GET, "/reports/export"), Some(2_000));
        assert_eq!(price(Method::HEAD, "/reports/export"), Some(2_000));
        assert_eq!(price(Method::POST, "/reports/export"), Some(3_000));
        assert_eq!(price(Method::POST, "/reports/42"), None);
    }

    #[test]
    fn an_explicit_head_price_keeps_get_routes_priced_for_head() {
        let mut builder = RouteTableBuilder::default();
        builder.add("GET /a", Price::sats(1).into()).unwrap();
        builder.add("HEAD /b", Price::sats(2).into()).unwrap();
        let table = builder.build().unwrap();
        assert!(table.find(&Method::HEAD, "/a").is_some());
        assert!(table.find(&Method::HEAD, "/b").is_some());
        assert!(table.find(&Method::GET, "/b").is_none());
    }

    #[test]
    fn patterns_axum_would_not_route_are_refused() {
        for route in [
            "GET /items/:id",
            "GET /x/*rest",
            "GET /files/*.txt",
            "GET /a/*/b",
            "GET /premium*",
            "GET /q?a=1",
            "GET /a#b",
        ] {
            let err = table(&[route]).map(drop).unwrap_err();
            assert!(
                matches!(err, RouteError::BadPattern { .. }),
                "{route}: {err}"
            );
        }
    }

    #[test]
    fn a_path_without_method_prices_every_method_and_exact_methods_win() {
        let mut builder = RouteTableBuilder::default();
        builder.add("/a", Price::sats(1).into()).unwrap();
        builder.add("POST /a", Price::sats(2).into()).unwrap();
        let table = builder.build().unwrap();
        let price = |method| match table.find(&method, "/a").unwrap().source {
            PriceSource::Fixed(price) => price,
            PriceSource::Dynamic(_) | PriceSource::DynamicWithBody(_) => unreachable!(),
        };
        assert_eq!(price(Method::POST), Price::sats(2));
        assert_eq!(price(Method::GET), Price::sats(1));
        assert_eq!(table.len, 2);
    }

    #[test]
    fn misconfiguration_is_refused_with_the_route_named() {
        let err = |routes: &[&str]| table(routes).unwrap_err().to_string();
        assert!(err(&["GET weather"]).contains("must start with '/'"));
        assert!(err(&["get /weather"]).contains("upper case"));
        assert!(err(&["OPTIONS /a"]).contains("always free"));
        assert!(err(&["GET /a", "GET /a"]).contains("priced twice"));
        assert!(err(&["/a", "/a"]).contains("priced twice"));
        assert!(err(&["GET /items/{id}", "GET /items/{name}"]).contains("/items/{name}"));
        assert!(err(&["GET /a/{"]).contains("\"GET /a/{\""));
        let mut builder = RouteTableBuilder::default();
        let zero = builder.add("GET /free", Price::msat(0).into()).unwrap_err();
        assert_eq!(
            zero,
            RouteError::BadPrice {
                route: "GET /free".into(),
                source: InvalidPrice::Zero
            }
        );
        let huge = builder.add("GET /x", Price::sats(u64::MAX).into());
        assert!(matches!(huge, Err(RouteError::BadPrice { .. })));
    }

    #[test]
    fn prices_convert_sats_to_msat() {
        assert_eq!(Price::sats(10).as_msat(), 10_000);
        assert_eq!(Price::msat(250_000).as_msat(), 250_000);
        assert_eq!(
            Price::sats(21_000_000 * 100_000_000).validate(),
            Ok(Price::msat(MAX_PRICE_MSAT))
        );
    }
}
