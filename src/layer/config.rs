//! Building the layer: its configuration, validated once, before any request.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use http::request::Parts;

use super::X402Layer;
#[cfg(feature = "paywall")]
use super::guard::PollMemory;
use super::guard::{InFlight, IssuedInvoices, SettledInvoices};
use super::hooks::{self, Hooks, PaymentRefused, SettleFailed, Settled};
use super::limit::{IssuanceLimit, Limiter};
use super::support::FacilitatorState;
use crate::clock::{self, Clock, SharedClock};
use crate::header::DEFAULT_MAX_HEADER_BYTES;
use crate::lnbtc::binding::PublicOrigin;
use crate::network::Network;
#[cfg(feature = "paywall")]
use crate::paywall::Paywall;
use crate::price::{PriceTag, RouteError, RouteTable, RouteTableBuilder};
use crate::receiver::{DynReceiver, Receiver};
use crate::{Facilitator, PublicKey};

/// How many invoices handed out in 402s the layer remembers, so their payments skip parsing
/// them again (about 1.5 KB each).
const ISSUED_MEMORY: usize = 4096;

/// How many polled invoices the layer remembers the last answer of (about 200 bytes each).
#[cfg(feature = "paywall")]
const POLL_MEMORY: usize = 16_384;

/// How many settled invoices the layer remembers by default.
pub const DEFAULT_SETTLED_MEMORY: usize = 100_000;

/// A layer configuration that cannot be used; returned by [`X402LayerBuilder::build`]. Its
/// `Debug` is its message, so that `main() -> Result<(), Box<dyn Error>>` prints the fix.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A route declaration is wrong.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// Both a route table and a price for every request were given.
    #[error("use either .route(..) prices or .price_every_request(..), not both")]
    TableAndEveryRequest,
    /// A route offers the `lnbtc` flow but the layer has no public origin to bind requests to.
    #[error(
        "the lnbtc flow binds each payment to the request's URL, and needs the public origin \
         the server is reached at: set .public_base_url(\"https://api.example.com\"), or offer \
         only the seed flow with .flows(Flows::V1)"
    )]
    PublicOriginRequired,
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
    /// An issuance rate that allows nothing, or more than one invoice a nanosecond.
    #[error("{0} must allow at least one invoice, and at most one a nanosecond")]
    IssuanceRate(&'static str),
}

/// The payment flows a priced route offers (both by default): the seed flow (x402 version 1,
/// `X-PAYMENT`, the facilitator pays on the client's authorization) and the upstream `lnbtc`
/// scheme (x402 version 2, `PAYMENT-SIGNATURE`, the client pays with any wallet and sends the
/// preimage). Parsed from `"v1"`, `"lnbtc"` or `"v1,lnbtc"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flows {
    v1: bool,
    lnbtc: bool,
}

impl Flows {
    /// Both flows, one invoice per 402 offered in each.
    pub const BOTH: Flows = Flows {
        v1: true,
        lnbtc: true,
    };
    /// The seed flow only.
    pub const V1: Flows = Flows {
        v1: true,
        lnbtc: false,
    };
    /// The `lnbtc` flow only.
    pub const LNBTC: Flows = Flows {
        v1: false,
        lnbtc: true,
    };

    /// Whether the seed flow (x402 version 1) is offered.
    pub const fn v1(self) -> bool {
        self.v1
    }

    /// Whether the `lnbtc` flow (x402 version 2) is offered.
    pub const fn lnbtc(self) -> bool {
        self.lnbtc
    }

    /// No flow: what a facilitator serving neither offers.
    #[cfg(test)]
    pub(crate) const NONE: Flows = Flows {
        v1: false,
        lnbtc: false,
    };

    pub(crate) const fn new(v1: bool, lnbtc: bool) -> Flows {
        Flows { v1, lnbtc }
    }

    /// The flows in both.
    pub(crate) const fn intersect(self, other: Flows) -> Flows {
        Flows {
            v1: self.v1 && other.v1,
            lnbtc: self.lnbtc && other.lnbtc,
        }
    }

    /// Whether every flow of `other` is in these.
    pub(crate) const fn covers(self, other: Flows) -> bool {
        (self.v1 || !other.v1) && (self.lnbtc || !other.lnbtc)
    }

    /// Whether no flow is in these.
    pub(crate) const fn is_empty(self) -> bool {
        !self.v1 && !self.lnbtc
    }

    /// These flows, less those of `other`.
    pub(crate) const fn without(self, other: Flows) -> Flows {
        Flows {
            v1: self.v1 && !other.v1,
            lnbtc: self.lnbtc && !other.lnbtc,
        }
    }
}

impl Default for Flows {
    fn default() -> Self {
        Flows::BOTH
    }
}

impl fmt::Display for Flows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.v1, self.lnbtc) {
            (true, true) => f.write_str("v1,lnbtc"),
            (true, false) => f.write_str("v1"),
            (false, true) => f.write_str("lnbtc"),
            (false, false) => f.write_str("none"),
        }
    }
}

/// A flow list that is not a comma-separated list of `v1` and `lnbtc`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown flows {0:?}: expected v1, lnbtc or v1,lnbtc")]
pub struct UnknownFlows(pub String);

impl std::str::FromStr for Flows {
    type Err = UnknownFlows;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut flows = Flows {
            v1: false,
            lnbtc: false,
        };
        for name in s.split(',').map(str::trim) {
            match name {
                "v1" => flows.v1 = true,
                "lnbtc" => flows.lnbtc = true,
                _ => return Err(UnknownFlows(s.to_owned())),
            }
        }
        Ok(flows)
    }
}

/// The largest request body a priced `lnbtc` route buffers to hash it, by default: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Which requests a layer prices.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once and kept in the layer's Arc, never moved on a request"
)]
pub(crate) enum Prices {
    /// Method + path table.
    Table(RouteTable),
    /// Every request the layer sees ([`X402Layer::charge`], `price_every_request`).
    Every(Arc<PriceTag>),
    /// None by itself: the layer only hands out [`X402Layer::charge`] layers.
    Nothing,
}

impl Prices {
    pub(crate) fn find(&self, method: &Method, path: &str) -> Option<&Arc<PriceTag>> {
        match self {
            Prices::Table(table) => table.find(method, path),
            Prices::Every(tag) => Some(tag),
            Prices::Nothing => None,
        }
    }
}

/// What one layer prices, and the state it shares with the layers `charge(..)` made from the
/// same builder: one allocation, so that a free request clones one `Arc`.
pub(crate) struct Pricing<F> {
    pub(crate) prices: Prices,
    pub(crate) shared: Arc<Shared<F>>,
}

/// Everything the layer's services share.
pub(crate) struct Shared<F> {
    pub(crate) facilitator: F,
    pub(crate) network: Network,
    pub(crate) pay_to: Option<PublicKey>,
    pub(crate) public_base_url: Option<String>,
    pub(crate) max_header_bytes: usize,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) settled: SettledInvoices,
    pub(crate) issued: IssuedInvoices,
    pub(crate) facilitator_state: FacilitatorState,
    pub(crate) limiter: Option<Limiter>,
    pub(crate) hooks: Hooks,
    pub(crate) clock: SharedClock,
    /// The flows priced routes offer unless their tag says otherwise.
    pub(crate) flows: Flows,
    /// The origin `lnbtc` payments are bound to (the public base URL).
    pub(crate) origin: Option<PublicOrigin>,
    /// The largest body a priced `lnbtc` route buffers.
    pub(crate) max_body_bytes: usize,
    /// The clock-skew allowance of the `lnbtc` checks, in seconds.
    pub(crate) skew_secs: u64,
    /// What mints invoices; `None`: the facilitator's `/requirements`.
    pub(crate) receiver: Option<Arc<dyn DynReceiver>>,
    /// The page browsers get on priced routes, unless a route says otherwise; `None`: none.
    #[cfg(feature = "paywall")]
    pub(crate) paywall: Option<Arc<Paywall>>,
    /// What the receiver last said of the invoices paywall pages poll.
    #[cfg(feature = "paywall")]
    pub(crate) polls: PollMemory,
}

impl<F> Shared<F> {
    /// The flows `tag`'s route offers.
    pub(crate) fn flows_of(&self, tag: &PriceTag) -> Flows {
        tag.flows.unwrap_or(self.flows)
    }
}

impl<F> fmt::Debug for Shared<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X402Config")
            .field("network", &self.network)
            .field("pay_to", &self.pay_to)
            .field("public_base_url", &self.public_base_url)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("issuance_limit", &self.limiter)
            .field("hooks", &self.hooks)
            .field("flows", &self.flows)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl<F> Shared<F> {
    /// The absolute URL of the requested resource: the public base URL when configured, else
    /// the request's own authority (absolute-form target) or `Host`, which must then be a plain
    /// `host[:port]`; `Err` says why the request names no usable origin. Without either (a
    /// request built in a test), the host is `localhost`.
    pub(crate) fn resource_url(&self, head: &Parts) -> Result<String, String> {
        let path = super::flow::request_target(head);
        if let Some(base) = &self.public_base_url {
            return Ok(format!("{base}{path}"));
        }
        let scheme = match head.uri.scheme_str() {
            None | Some("http") => "http",
            Some("https") => "https",
            Some(other) => return Err(format!("the request's scheme {other:?} is not http(s)")),
        };
        let mut hosts = head.headers.get_all(http::header::HOST).iter();
        let host = match (head.uri.authority(), hosts.next(), hosts.next()) {
            (Some(authority), _, _) => authority.as_str(),
            (None, Some(_), Some(_)) => return Err("the request has more than one Host".into()),
            (None, Some(host), None) => host.to_str().unwrap_or("\u{fffd}"),
            (None, None, _) => "localhost",
        };
        if !is_host_and_port(host) {
            return Err(format!(
                "the request's Host {:?} is not a valid host[:port]",
                host.chars().take(64).collect::<String>()
            ));
        }
        let url = format!("{scheme}://{host}{path}");
        // A URL parser must agree that this is an absolute URL with that very host.
        match reqwest::Url::parse(&url) {
            Ok(parsed) if parsed.username().is_empty() && parsed.password().is_none() => Ok(url),
            _ => Err(format!(
                "the request's URL {url:?} is not a valid absolute URL"
            )),
        }
    }
}

/// Whether `authority` is `host[:port]` and nothing more: a DNS name or IPv4 address (dot-
/// separated labels of 1 to 63 letters, digits, `-` or `_`, not starting or ending with `-`,
/// one trailing dot allowed) or a bracketed IPv6 address, then an optional port from 1 to 65535
/// written without leading zeros. No userinfo, no spaces, no empty port.
fn is_host_and_port(authority: &str) -> bool {
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) => {
                let port = match after {
                    "" => None,
                    after => match after.strip_prefix(':') {
                        Some(port) => Some(port),
                        None => return false,
                    },
                };
                (v6.parse::<std::net::Ipv6Addr>().is_ok(), port)
            }
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (is_dns_name(host), Some(port)),
            None => (is_dns_name(authority), None),
        },
    };
    let port_ok = port.is_none_or(|port| {
        !port.starts_with('0')
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok()
    });
    host_ok && port_ok
}

/// Whether `host` is a DNS name or dotted IPv4 address as [`is_host_and_port`] takes it.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
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
    issuance_limit: Option<IssuanceLimit>,
    hooks: Hooks,
    clock: SharedClock,
    flows: Flows,
    max_body_bytes: usize,
    skew: Duration,
    receiver: Option<Arc<dyn DynReceiver>>,
    #[cfg(feature = "paywall")]
    paywall: Option<Arc<Paywall>>,
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
            issuance_limit: None,
            hooks: Hooks::default(),
            clock: clock::system(),
            flows: Flows::BOTH,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            skew: Duration::from_secs(crate::lnbtc::DEFAULT_SKEW_SECS),
            receiver: None,
            #[cfg(feature = "paywall")]
            paywall: Some(Arc::new(Paywall::new())),
            first_error: None,
        }
    }

    /// The page a browser gets on this layer's priced routes (on by default, with the default
    /// page): a title, the operator's name, or a page of one's own. A route's
    /// [`PriceTag::paywall`] or [`PriceTag::no_paywall`] overrides it. See
    /// [`paywall`](crate::paywall) for which requests get it and why it is on by default.
    #[cfg(feature = "paywall")]
    #[cfg_attr(docsrs, doc(cfg(feature = "paywall")))]
    pub fn paywall(mut self, paywall: Paywall) -> Self {
        self.paywall = Some(Arc::new(paywall));
        self
    }

    /// No paywall page on this layer's routes (unless a route sets its own with
    /// [`PriceTag::paywall`]): browsers get the JSON 402 like every client.
    #[cfg(feature = "paywall")]
    #[cfg_attr(docsrs, doc(cfg(feature = "paywall")))]
    pub fn no_paywall(mut self) -> Self {
        self.paywall = None;
        self
    }

    /// The flows priced routes offer (default [`Flows::BOTH`]); a route's
    /// [`PriceTag::flows`] overrides it. The `lnbtc` flow needs
    /// [`public_base_url`](Self::public_base_url).
    pub fn flows(mut self, flows: Flows) -> Self {
        self.flows = flows;
        self
    }

    /// The largest request body a priced route reads whole (default [`DEFAULT_MAX_BODY_BYTES`],
    /// 1 MiB): to bind an `lnbtc` payment to it, for a route's request check
    /// ([`PriceTag::check_request`]) or a price read from the body
    /// ([`PriceTag::dynamic_with_body`]). A larger body gets 413, with nothing minted. The
    /// handler gets the same bytes.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// The clock-skew allowance of the `lnbtc` invoice checks (default 60 s): how far in the
    /// future an invoice's creation time may be, and how long after its end a paid proof is
    /// still accepted.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Mints the 402s' invoices with `receiver` instead of the facilitator's `/requirements`
    /// (see [`receiver`](crate::receiver): the receiver's key must be this server's alone).
    pub fn receiver(mut self, receiver: impl Receiver) -> Self {
        self.receiver = Some(Arc::new(receiver));
        self
    }

    /// Prices a route of the price table: `"GET /weather"`, `"POST /items/{id}"`,
    /// `"GET /premium/*"`, or a path alone (`"/reports/{*path}"`) for every method.
    ///
    /// The table is matched against the request's path, apart from the router: a pattern that
    /// misses its route (`/reports` for a router serving `/report`) leaves that route free.
    /// Prefer declaring the price on the route itself with [`X402Layer::charge`], and extract
    /// [`VerifiedPayment`](crate::VerifiedPayment) in paid handlers: without a payment the
    /// extractor answers 500 instead of serving.
    pub fn route(mut self, route: impl Into<String>, price: impl Into<PriceTag>) -> Self {
        if let Err(err) = self.routes.add(&route.into(), price.into()) {
            self.first_error.get_or_insert(err.into());
        }
        self
    }

    /// Prices every request the layer sees, for a single service (for axum routes,
    /// [`X402Layer::charge`] does the same and shares the layer's memory).
    pub fn price_every_request(mut self, price: impl Into<PriceTag>) -> Self {
        self.every_request = Some(price.into());
        self
    }

    /// Pins the payee: only invoices payable to this node key are handed out or accepted.
    ///
    /// Without a pin, the layer accepts an invoice only if it is payable to a node the receiver
    /// vouched for: the payee of an invoice minted for this layer, or, when the facilitator is
    /// the receiver, the node it announces as `payTo` in `/supported`. A payment to a payee not
    /// known yet waits for one bounded lookup (see [`X402Layer::check_facilitator`]); a client
    /// can never have its own invoice checked against itself.
    pub fn pay_to(mut self, node: PublicKey) -> Self {
        self.pay_to = Some(node);
        self
    }

    /// The public URL the server is reached at (e.g. `https://api.example.com`), used for
    /// `resource` and, in the `lnbtc` flow, as the origin every payment is bound to: **required
    /// unless the layer offers only the seed flow** ([`Flows::V1`]; `build` says so otherwise),
    /// and then an origin (no path). Without it (seed flow only) the request's `Host` is used,
    /// and a priced request whose `Host` is not a plain `host[:port]` (userinfo, a bad port,
    /// junk) is refused with 400.
    pub fn public_base_url(mut self, url: impl Into<String>) -> Self {
        self.public_base_url = Some(url.into());
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

    /// Limits how many invoices the layer has minted for its 402s, per client and in all
    /// (default: no limit). A request over a limit gets a 429 with `Retry-After`, and nothing
    /// is minted. Calling it again replaces the limit.
    pub fn issuance_limit(mut self, limit: IssuanceLimit) -> Self {
        self.issuance_limit = Some(limit);
        self
    }

    /// The clock the layer reads (default: the system's), for invoice expiry and rate limits.
    /// Tests pass a [`ManualClock`](crate::clock::ManualClock) shared with the mock
    /// facilitator.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Calls `hook` each time a payment is settled, to record revenue (see [`Settled`] and
    /// the [`hooks`](super::hooks) docs: the hook runs in its own task and the response waits
    /// for it). Setting it again replaces it. The hook's future is `'static`: clone the state
    /// it updates into it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use x402_lightning::mock::MockFacilitator;
    /// use x402_lightning::{Network, X402Layer};
    ///
    /// # fn main() -> Result<(), x402_lightning::ConfigError> {
    /// let revenue_msat = Arc::new(AtomicU64::new(0));
    /// let counter = Arc::clone(&revenue_msat);
    /// let payments = X402Layer::builder(MockFacilitator::new(), Network::Regtest)
    ///     .public_base_url("https://api.example.com")
    ///     .on_settled(move |paid| {
    ///         let counter = Arc::clone(&counter);
    ///         async move {
    ///             counter.fetch_add(paid.amount_msat, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build()?;
    /// # let _ = payments;
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_settled<H, Fut>(mut self, hook: H) -> Self
    where
        H: Fn(Settled) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.settled = Some(hooks::hook(hook));
        self
    }

    /// Calls `hook` each time a settle does not pay (see [`SettleFailed`]), for example to
    /// undo what a settle-after-handler route's handler did. Setting it again replaces it.
    pub fn on_settle_failed<H, Fut>(mut self, hook: H) -> Self
    where
        H: Fn(SettleFailed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.settle_failed = Some(hooks::hook(hook));
        self
    }

    /// Calls `hook` each time a request's payment is refused before its handler runs (see
    /// [`PaymentRefused`]). Setting it again replaces it.
    pub fn on_payment_refused<H, Fut>(mut self, hook: H) -> Self
    where
        H: Fn(PaymentRefused) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.payment_refused = Some(hooks::hook(hook));
        self
    }

    /// Validates the configuration and builds the layer.
    ///
    /// Without `.route(..)` or `.price_every_request(..)` the layer prices nothing by itself:
    /// declare each price on its route with [`X402Layer::charge`] (applying such a layer
    /// directly panics, see [`X402Layer`]).
    ///
    /// # Errors
    ///
    /// A bad route pattern, price or duplicate route ([`ConfigError::Route`]), both a table
    /// and a price for every request, a zero limit, a bad public base URL or issuance rate.
    pub fn build(self) -> Result<X402Layer<F>, ConfigError> {
        if let Some(err) = self.first_error {
            return Err(err);
        }
        let lnbtc_offered = self.flows.lnbtc()
            || self
                .routes
                .tags()
                .chain(self.every_request.as_ref())
                .any(|tag| tag.flows.is_some_and(Flows::lnbtc));
        // A route that failed to parse ended `build` above, so every declared route is here.
        let prices = match (self.routes.len(), self.every_request) {
            (0, None) => Prices::Nothing,
            (0, Some(tag)) => Prices::Every(Arc::new(validate_every(tag, "every request")?)),
            (_, None) => Prices::Table(self.routes.build()?),
            (_, Some(_)) => return Err(ConfigError::TableAndEveryRequest),
        };
        if self.max_header_bytes == 0 {
            return Err(ConfigError::Zero("max_header_bytes"));
        }
        if self.settled_memory == 0 {
            return Err(ConfigError::Zero("settled_memory"));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::Zero("max_body_bytes"));
        }
        let public_base_url = self
            .public_base_url
            .map(|url| validate_base_url(&url))
            .transpose()?;
        let origin = match &public_base_url {
            Some(url) => match PublicOrigin::parse(url) {
                Ok(origin) if origin.as_str() == url => Some(origin),
                _ => None,
            },
            None => None,
        };
        if lnbtc_offered && origin.is_none() {
            return Err(match public_base_url {
                None => ConfigError::PublicOriginRequired,
                Some(url) => ConfigError::PublicBaseUrl {
                    url,
                    why: "must be an origin (scheme://host[:port], no path) to bind lnbtc payments",
                },
            });
        }
        let limiter = self
            .issuance_limit
            .map(|limit| limit.build(Arc::clone(&self.clock)))
            .transpose()
            .map_err(ConfigError::IssuanceRate)?;
        let shared = Arc::new(Shared {
            facilitator: self.facilitator,
            network: self.network,
            pay_to: self.pay_to,
            public_base_url,
            max_header_bytes: self.max_header_bytes,
            in_flight: Arc::default(),
            settled: SettledInvoices::new(self.settled_memory),
            issued: IssuedInvoices::new(ISSUED_MEMORY),
            facilitator_state: FacilitatorState::default(),
            limiter,
            hooks: self.hooks,
            clock: self.clock,
            flows: self.flows,
            origin,
            max_body_bytes: self.max_body_bytes,
            skew_secs: self.skew.as_secs(),
            receiver: self.receiver,
            #[cfg(feature = "paywall")]
            paywall: self.paywall,
            #[cfg(feature = "paywall")]
            polls: PollMemory::new(POLL_MEMORY),
        });
        Ok(X402Layer {
            pricing: Arc::new(Pricing { prices, shared }),
        })
    }
}

/// `tag` as the price of every request a layer sees, or why not (`route` names it).
pub(crate) fn validate_every(tag: PriceTag, route: &str) -> Result<PriceTag, RouteError> {
    tag.validate().map_err(|source| RouteError::BadPrice {
        route: route.to_owned(),
        source,
    })?;
    Ok(tag)
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
