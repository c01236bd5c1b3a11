//! Prices and the route table: which requests cost what.
//!
//! A route is declared as `"METHOD /path"` (or `"/path"` for every method) with a
//! [`PriceTag`]: a fixed [`Price`] or a [`DynamicPrice`] callback, plus what the payment buys
//! (description, MIME type, timeout) and when to settle. Paths use axum's syntax: `{id}` matches
//! one segment, `{*rest}` or a trailing `/*` matches the rest of the path.
//!
//! Patterns match the raw request path exactly as axum's router does: no percent-decoding, no
//! trailing-slash or case folding. A `GET` price also covers `HEAD`, because axum serves `HEAD`
//! with the `GET` handler.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::Method;
use http::request::Parts;

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
}

/// A future answering a [`DynamicPrice`] question.
pub type PriceFuture = Pin<Box<dyn Future<Output = Option<Price>> + Send>>;

/// A price decided per request: sees the request head (method, URI, headers, extensions) and
/// returns the price, or `None` for "free this time" (e.g. a free tier).
///
/// Implemented for every `Fn(&Parts) -> impl Future<Output = Option<Price>>` closure; clone what
/// the future needs out of the head before the `async` block.
///
/// ```
/// use x402_lightning::{Price, PriceTag};
///
/// let tag = PriceTag::dynamic(|head: &http::request::Parts| {
///     let free_tier = head.headers.contains_key("x-free-tier-token");
///     async move { (!free_tier).then_some(Price::sats(5)) }
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

/// When the facilitator is asked to settle a route's payment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SettleMode {
    /// Run the handler on a verified payment, then settle; the response waits for the settle
    /// and is dropped unread if the settle fails. A handler answer ≥ 400 is not settled.
    #[default]
    AfterHandler,
    /// Settle before the handler runs, for work that must not happen unpaid; a failed settle
    /// means the handler never runs, and a paid request is paid whatever the handler answers.
    BeforeHandler,
}

/// The price source of a route.
#[derive(Clone)]
pub(crate) enum PriceSource {
    Fixed(Price),
    Dynamic(Arc<dyn DynamicPrice>),
}

impl fmt::Debug for PriceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceSource::Fixed(price) => f.debug_tuple("Fixed").field(price).finish(),
            PriceSource::Dynamic(_) => f.write_str("Dynamic(..)"),
        }
    }
}

/// What a route costs and what the payment buys.
///
/// Built from a [`Price`] (`Price::sats(10).into()`) or a [`DynamicPrice`], then refined with
/// `#[must_use]` setters.
#[derive(Clone, Debug)]
pub struct PriceTag {
    pub(crate) source: PriceSource,
    pub(crate) description: String,
    pub(crate) mime_type: String,
    pub(crate) max_timeout_seconds: u64,
    pub(crate) output_schema: Option<serde_json::Value>,
    pub(crate) settle: SettleMode,
}

impl PriceTag {
    /// A route that always costs `price`.
    pub fn fixed(price: Price) -> Self {
        Self::with_source(PriceSource::Fixed(price))
    }

    /// A route whose price is decided per request by `price`.
    pub fn dynamic(price: impl DynamicPrice) -> Self {
        Self::with_source(PriceSource::Dynamic(Arc::new(price)))
    }

    fn with_source(source: PriceSource) -> Self {
        Self {
            source,
            description: String::new(),
            mime_type: String::new(),
            max_timeout_seconds: DEFAULT_MAX_TIMEOUT_SECONDS,
            output_schema: None,
            settle: SettleMode::AfterHandler,
        }
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

    /// Settle before the handler runs ([`SettleMode::BeforeHandler`]).
    #[must_use]
    pub fn settle_before_handler(self) -> Self {
        self.settle(SettleMode::BeforeHandler)
    }

    pub(crate) fn validate(&self) -> Result<(), InvalidPrice> {
        match &self.source {
            PriceSource::Fixed(price) => price.validate().map(drop),
            PriceSource::Dynamic(_) => Ok(()),
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

/// Method + path pattern → price tag, matched like axum's router.
#[derive(Clone, Default)]
pub(crate) struct RouteTable {
    router: matchit::Router<Vec<MethodPrice>>,
    len: usize,
}

#[derive(Clone, Debug)]
struct MethodPrice {
    /// `None` prices every method.
    method: Option<Method>,
    tag: Arc<PriceTag>,
}

/// Builds a [`RouteTable`], grouping methods by path so `GET /a` and `POST /a` share a node.
#[derive(Debug, Default)]
pub(crate) struct RouteTableBuilder {
    paths: Vec<(String, Vec<MethodPrice>)>,
    index: HashMap<String, usize>,
}

impl RouteTableBuilder {
    /// Adds a route; fails on a bad pattern, a bad price or a duplicate.
    pub(crate) fn add(&mut self, route: &str, tag: PriceTag) -> Result<(), RouteError> {
        let bad = |why: &str| RouteError::BadPattern {
            route: route.to_owned(),
            why: why.to_owned(),
        };
        tag.validate().map_err(|source| RouteError::BadPrice {
            route: route.to_owned(),
            source,
        })?;
        let (method, path) = parse_route(route).map_err(bad)?;
        let path = match path.strip_suffix("/*") {
            Some(prefix) => format!("{prefix}/{TRAILING_WILDCARD}"),
            None => path.to_owned(),
        };
        let slot = match self.index.entry(path.clone()) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                // Check the pattern alone now, so the error names this route.
                matchit::Router::new()
                    .insert(path.clone(), ())
                    .map_err(|err| bad(&err.to_string()))?;
                self.paths.push((path, Vec::new()));
                *entry.insert(self.paths.len() - 1)
            }
        };
        let methods = &mut self.paths[slot].1;
        if methods.iter().any(|existing| existing.method == method) {
            return Err(RouteError::Duplicate {
                route: route.to_owned(),
            });
        }
        methods.push(MethodPrice {
            method,
            tag: Arc::new(tag),
        });
        Ok(())
    }

    /// Builds the table; fails when two paths conflict (e.g. `{id}` and `{name}` in one place).
    pub(crate) fn build(self) -> Result<RouteTable, RouteError> {
        let mut router = matchit::Router::new();
        let mut len = 0;
        for (path, methods) in self.paths {
            len += methods.len();
            let route = path.replace(TRAILING_WILDCARD, "*");
            router
                .insert(path, methods)
                .map_err(|err| RouteError::BadPattern {
                    route,
                    why: err.to_string(),
                })?;
        }
        Ok(RouteTable { router, len })
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
    pub(crate) fn find(&self, method: &Method, path: &str) -> Option<&Arc<PriceTag>> {
        let methods = self.router.at(path).ok()?.value;
        let exact = |wanted: &Method| {
            methods
                .iter()
                .find(|entry| entry.method.as_ref() == Some(wanted))
        };
        exact(method)
            .or_else(|| {
                (method == Method::HEAD)
                    .then(|| exact(&Method::GET))
                    .flatten()
            })
            .or_else(|| methods.iter().find(|entry| entry.method.is_none()))
            .map(|entry| &entry.tag)
    }
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
        Some(method) if method.bytes().all(|b| b.is_ascii_uppercase()) => Some(
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
        // As in axum, a catch-all needs at least one character.
        assert!(!priced(&table, Method::GET, "/premium/"));
    }

    #[test]
    fn a_path_without_method_prices_every_method_and_exact_methods_win() {
        let mut builder = RouteTableBuilder::default();
        builder.add("/a", Price::sats(1).into()).unwrap();
        builder.add("POST /a", Price::sats(2).into()).unwrap();
        let table = builder.build().unwrap();
        let price = |method| match table.find(&method, "/a").unwrap().source {
            PriceSource::Fixed(price) => price,
            PriceSource::Dynamic(_) => unreachable!(),
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
