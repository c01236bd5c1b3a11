//! Building the layer: its configuration, validated once, before any request.

use std::fmt;
use std::sync::Arc;

use http::Method;
use http::request::Parts;

use super::X402Layer;
use super::guard::{InFlight, IssuedInvoices, SettledInvoices};
use super::support::FacilitatorState;
use crate::header::DEFAULT_MAX_HEADER_BYTES;
use crate::network::Network;
use crate::price::{PriceTag, RouteError, RouteTable, RouteTableBuilder};
use crate::{Facilitator, PublicKey};

/// How many invoices handed out in 402s the layer remembers, so their payments skip parsing
/// them again (about 1.5 KB each).
const ISSUED_MEMORY: usize = 4096;

/// How many settled invoices the layer remembers by default.
pub const DEFAULT_SETTLED_MEMORY: usize = 100_000;

/// A layer configuration that cannot be used; returned by [`X402LayerBuilder::build`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A route declaration is wrong.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// Neither a route price nor a price for every request was given.
    #[error("no price declared: add routes with .route(..) or use .price_every_request(..)")]
    NoPrices,
    /// Both a route table and a price for every request were given.
    #[error("use either .route(..) prices or .price_every_request(..), not both")]
    TableAndEveryRequest,
    /// The public base URL is not an absolute `http(s)://host[/prefix]` URL.
    #[error("public base URL {url:?}: {why}")]
    PublicBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A limit was set to zero.
    #[error("{0} must be more than zero")]
    Zero(&'static str),
}

/// Which requests are priced.
#[derive(Debug)]
pub(crate) enum Prices {
    /// Method + path table.
    Table(RouteTable),
    /// Every request the layer sees (for `route_layer`).
    Every(Arc<PriceTag>),
}

impl Prices {
    pub(crate) fn find(&self, method: &Method, path: &str) -> Option<&Arc<PriceTag>> {
        match self {
            Prices::Table(table) => table.find(method, path),
            Prices::Every(tag) => Some(tag),
        }
    }
}

/// Everything the layer's services share.
pub(crate) struct Shared<F> {
    pub(crate) facilitator: F,
    pub(crate) network: Network,
    pub(crate) pay_to: Option<PublicKey>,
    pub(crate) public_base_url: Option<String>,
    pub(crate) max_header_bytes: usize,
    pub(crate) prices: Prices,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) settled: SettledInvoices,
    pub(crate) issued: IssuedInvoices,
    pub(crate) facilitator_state: FacilitatorState,
}

impl<F> fmt::Debug for Shared<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X402Config")
            .field("network", &self.network)
            .field("pay_to", &self.pay_to)
            .field("public_base_url", &self.public_base_url)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("prices", &self.prices)
            .finish_non_exhaustive()
    }
}

impl<F> Shared<F> {
    /// The absolute URL of the requested resource: the public base URL when configured, else
    /// the request's own authority or `Host`.
    pub(crate) fn resource_url(&self, head: &Parts) -> String {
        let path = head
            .uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str());
        if let Some(base) = &self.public_base_url {
            return format!("{base}{path}");
        }
        let scheme = head.uri.scheme_str().unwrap_or("http");
        let host = head
            .uri
            .authority()
            .map(|authority| authority.as_str())
            .or_else(|| {
                let host = head.headers.get(http::header::HOST)?.to_str().ok()?;
                host.parse::<http::uri::Authority>().is_ok().then_some(host)
            })
            .unwrap_or("localhost");
        format!("{scheme}://{host}{path}")
    }
}

/// Builds an [`X402Layer`]: the facilitator and network, then prices and options.
///
/// Errors in route declarations are kept and reported by [`build`](Self::build).
#[must_use]
pub struct X402LayerBuilder<F> {
    facilitator: F,
    network: Network,
    pay_to: Option<PublicKey>,
    public_base_url: Option<String>,
    max_header_bytes: usize,
    settled_memory: usize,
    routes: RouteTableBuilder,
    every_request: Option<PriceTag>,
    first_error: Option<ConfigError>,
}

impl<F> fmt::Debug for X402LayerBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X402LayerBuilder")
            .field("network", &self.network)
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl<F: Facilitator> X402LayerBuilder<F> {
    pub(crate) fn new(facilitator: F, network: Network) -> Self {
        Self {
            facilitator,
            network,
            pay_to: None,
            public_base_url: None,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            settled_memory: DEFAULT_SETTLED_MEMORY,
            routes: RouteTableBuilder::default(),
            every_request: None,
            first_error: None,
        }
    }

    /// Prices a route: `"GET /weather"`, `"POST /items/{id}"`, `"GET /premium/*"`, or a path
    /// alone (`"/reports/{*path}"`) for every method.
    pub fn route(mut self, route: &str, price: impl Into<PriceTag>) -> Self {
        if let Err(err) = self.routes.add(route, price.into()) {
            self.first_error.get_or_insert(err.into());
        }
        self
    }

    /// Prices every request the layer sees, for axum's `route_layer` or a single service.
    pub fn price_every_request(mut self, price: impl Into<PriceTag>) -> Self {
        self.every_request = Some(price.into());
        self
    }

    /// Pins the payee: only invoices payable to this node key are handed out or accepted.
    pub fn pay_to(mut self, node: PublicKey) -> Self {
        self.pay_to = Some(node);
        self
    }

    /// The public URL the server is reached at (e.g. `https://api.example.com`), used for
    /// `resource`; without it the request's `Host` is used.
    pub fn public_base_url(mut self, url: &str) -> Self {
        self.public_base_url = Some(url.to_owned());
        self
    }

    /// The largest `X-PAYMENT` value accepted, in bytes (default 8 KiB).
    pub fn max_header_bytes(mut self, max: usize) -> Self {
        self.max_header_bytes = max;
        self
    }

    /// How many settled invoices to remember, to refuse their reuse without asking the
    /// facilitator (default [`DEFAULT_SETTLED_MEMORY`]).
    pub fn settled_memory(mut self, invoices: usize) -> Self {
        self.settled_memory = invoices;
        self
    }

    /// Validates the configuration and builds the layer.
    pub fn build(self) -> Result<X402Layer<F>, ConfigError> {
        if let Some(err) = self.first_error {
            return Err(err);
        }
        // A route that failed to parse ended `build` above, so every declared route is here.
        let prices = match (self.routes.len(), self.every_request) {
            (0, None) => return Err(ConfigError::NoPrices),
            (0, Some(tag)) => {
                tag.validate().map_err(|source| RouteError::BadPrice {
                    route: "every request".to_owned(),
                    source,
                })?;
                Prices::Every(Arc::new(tag))
            }
            (_, None) => Prices::Table(self.routes.build()?),
            (_, Some(_)) => return Err(ConfigError::TableAndEveryRequest),
        };
        if self.max_header_bytes == 0 {
            return Err(ConfigError::Zero("max_header_bytes"));
        }
        if self.settled_memory == 0 {
            return Err(ConfigError::Zero("settled_memory"));
        }
        let public_base_url = self
            .public_base_url
            .map(|url| validate_base_url(&url))
            .transpose()?;
        Ok(X402Layer {
            shared: Arc::new(Shared {
                facilitator: self.facilitator,
                network: self.network,
                pay_to: self.pay_to,
                public_base_url,
                max_header_bytes: self.max_header_bytes,
                prices,
                in_flight: Arc::default(),
                settled: SettledInvoices::new(self.settled_memory),
                issued: IssuedInvoices::new(ISSUED_MEMORY),
                facilitator_state: FacilitatorState::default(),
            }),
        })
    }
}

/// `http(s)://authority[/prefix]`, without a trailing slash, query or fragment.
fn validate_base_url(url: &str) -> Result<String, ConfigError> {
    let bad = |why| ConfigError::PublicBaseUrl {
        url: url.to_owned(),
        why,
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("not a valid URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("must start with http:// or https://")),
    }
    if uri
        .authority()
        .is_none_or(|authority| authority.host().is_empty())
    {
        return Err(bad("has no host"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(bad("must not have a query or fragment"));
    }
    if uri
        .authority()
        .is_some_and(|authority| authority.as_str().contains('@'))
    {
        return Err(bad("must not carry credentials"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}
