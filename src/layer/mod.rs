//! The payment layer: [`X402Layer`] puts a price on routes of any tower service (an axum
//! `Router` included) and lets a priced request through only once the facilitator has verified
//! its payment, and releases the response only once the payment is settled.
//!
//! Prices are declared on each route with [`X402Layer::charge`] (for axum's `route_layer`;
//! the price cannot miss its route) or in a price table ([`X402LayerBuilder::route`]) for a
//! layer around a whole service. [`hooks`] report what each payment came to.
//!
//! Free routes and `OPTIONS` preflights go straight to the inner service, with no allocation
//! beyond the route match and no facilitator call; the response keeps the inner service's own
//! body type (the layer's answers are built with `ResBody: From<Bytes>`, which axum's `Body`
//! and `http_body_util::Full` are). A priced request without a usable `X-PAYMENT` gets a 402
//! with fresh requirements; a paid one is pre-checked (network, amount, payee, expiry, reuse),
//! verified, served and settled. Every refusal is a JSON response (see the table in
//! the [wire contract](crate::protocol)), never an error of the service.
//!
//! What the layer guarantees beyond the table:
//!
//! - **The payee is never the client's choice.** With [`X402LayerBuilder::pay_to`] the invoice
//!   must pay that node. Without it, it must pay a node the receiver vouched for (the payee of
//!   an invoice minted for this layer, or the facilitator's node announced in `/supported` when
//!   the facilitator is the receiver). A payment to a payee not known yet waits for one bounded
//!   lookup; an `lnbtc` proof the layer still cannot judge gets 503 with `Retry-After`, never a
//!   verdict on a payment the client may have made.
//! - **A 402 offers only what can be paid**: the route's flows that the facilitator's
//!   `/supported` lists (all of them until it has answered).
//! - **A request the route refuses costs nothing**: a route's request check
//!   ([`PriceTag::check_request`](crate::PriceTag::check_request)) runs before any invoice is
//!   minted or payment taken, in either flow.
//! - **No cache keeps an invoice or paid content**: the layer's answers carry
//!   `Cache-Control: no-store`, a paid response without its own `Cache-Control` gets
//!   `private, no-store`.
//! - **Payment headers never reach a handler** (`X-PAYMENT`, `PAYMENT-SIGNATURE`), on free
//!   routes and preflights too.
//! - **`resource` is a valid absolute URL**: the public base URL when configured, else the
//!   request's `Host`, which must be a plain `host[:port]` (400 otherwise).
//! - **A hanging facilitator costs a request a bounded wait**: the `/supported` check runs in
//!   the background; only a payment to a payee not known yet waits for one lookup (each call
//!   bounded by the facilitator's timeout).
//! - **A settle that was sent always lands**: it runs detached from the request (on the tokio
//!   runtime), so a client that hangs up mid-settle cannot make the layer forget a payment; a
//!   settle "success" for another invoice is a 502 and the invoice is remembered as settled.
//! - **Unpaid traffic holds no readiness of the inner service**: a priced request releases what
//!   `poll_ready` reserved and drives the inner service to readiness only once let through, so
//!   a `ConcurrencyLimit` or `Buffer` inside the layer serves paid and free requests while
//!   unpaid ones wait for the facilitator.
//! - **Invoice issuance can be limited** ([`IssuanceLimit`]): 429 with `Retry-After`, no mint.
//!
//! ```
//! use axum::{Router, routing::get};
//! use x402_lightning::mock::MockFacilitator;
//! use x402_lightning::{HttpFacilitator, Network, Price, PriceTag, X402Layer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mock = MockFacilitator::start().await?; // or your facilitator's URL
//! let facilitator = HttpFacilitator::new(&mock.url())?;
//!
//! let payments = X402Layer::builder(facilitator, Network::Regtest)
//!     .public_base_url("http://localhost")
//!     .route("GET /weather", Price::sats(10))
//!     .route(
//!         "GET /premium/*",
//!         PriceTag::fixed(Price::msat(250_000)).description("Premium content"),
//!     )
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "free" }))
//!     .route("/weather", get(|| async { "sunny" }))
//!     .layer(payments);
//!
//! use tower::ServiceExt as _;
//! let unpaid = http::Request::get("/weather").body(axum::body::Body::empty())?;
//! let response = app.oneshot(unpaid).await?;
//! assert_eq!(response.status(), http::StatusCode::PAYMENT_REQUIRED);
//! # Ok(())
//! # }
//! ```

mod config;
mod detach;
mod flow;
mod future;
pub(crate) mod guard;
mod handoff;
pub mod hooks;
mod limit;
mod payment;
mod respond;
mod service;
mod support;

pub use self::config::{
    ConfigError, DEFAULT_MAX_BODY_BYTES, DEFAULT_SETTLED_MEMORY, Flows, UnknownFlows,
    X402LayerBuilder,
};
pub use self::future::ResponseFuture;
pub use self::hooks::{PaymentRefused, SettleFailed, Settled};
pub use self::limit::{ClientKeyFn, IssuanceLimit, IssuanceRate};
#[cfg(feature = "axum")]
pub use self::payment::MissingPayment;
pub use self::payment::{PaymentFlow, VerifiedPayment};
pub use self::service::{X402Layer, X402Service};
pub use self::support::SupportError;
