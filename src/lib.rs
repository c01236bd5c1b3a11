//! # x402-lightning
//!
//! Charge for HTTP routes in bitcoin over the Lightning Network with the
//! [x402](https://www.x402.org) protocol (HTTP 402 Payment Required), `exact` scheme.
//!
//! [`X402Layer`] is a tower layer: priced routes answer 402 with one fresh BOLT11 invoice,
//! offered through two flows. In upstream's `exact` on `lnbtc` (x402 version 2), the client pays
//! it with any Lightning wallet and sends the preimage in `PAYMENT-SIGNATURE`; the layer checks
//! the proof against the request, has the facilitator record it (`/settle`), then serves. In
//! the seed flow (x402 version 1), an `X-PAYMENT` authorization is pre-checked, verified by the
//! facilitator, served, and settled before its response leaves. The resource server never
//! holds Lightning credentials. What goes over the wire, and what the layer answers when, is in
//! [`protocol`].
//!
//! - [`protocol`]: the wire contract, the answer table, the signing rule and where `payTo`
//!   comes from (documentation only);
//! - [`guide`]: the manual, one page per topic: pricing, testing, security, the demo,
//!   conformance, the test suite, status (documentation only);
//! - [`layer`]: [`X402Layer`], its service, [`VerifiedPayment`] for handlers, and the
//!   [`hooks`](layer::hooks) (settled, settle failed, payment refused);
//! - [`price`]: [`Price`], [`PriceTag`], dynamic prices and the route patterns;
//! - [`lnbtc`]: the `lnbtc` scheme as a library (x402 v2 wire types and headers, request
//!   binding, strict invoice decoding, the facilitator's `/settle` checks, a client's checks);
//! - [`receiver`]: what mints the invoices ([`receiver::Receiver`], the facilitator's);
//! - [`network`]: the networks and their `lightning…` and `lnbtc:…` names;
//! - [`v1`]: the seed scheme as a library (x402 v1 wire types, header codec, invoice
//!   pre-checks, the signed messages and [`v1::AccountKey`], the facilitator's ordered
//!   `/verify` and `/settle` checks, the accounts' wire types); [`types`] and [`invoice`] are
//!   its modules under their earlier names;
//! - [`header`]: the payment header names of both flows, and the `X-PAYMENT` codec;
//! - [`facilitator`]: the [`Facilitator`] trait and [`HttpFacilitator`], its HTTP client;
//! - `client` (feature `client`): the paying client, a `reqwest-middleware` middleware that
//!   pays a 402 in either flow within a budget, with wallets (LND, Nostr Wallet Connect, the
//!   simulated node) and the seed flow's account;
//! - `paywall` (feature `paywall`, on by default): the browser paywall, an HTML 402 page with
//!   the invoice as a QR code and a WebLN button that unlocks by itself once the invoice is
//!   paid, from any wallet;
//! - [`clock`]: the layer's and the mock's time, injectable for tests ([`clock::ManualClock`]);
//! - `mock` (feature `mock`): a mock facilitator that mints real signed invoices, in process or
//!   as a real HTTP server, plays the Lightning network for the `lnbtc` flow, and a test wallet
//!   that pays in both flows.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use x402_lightning::{HttpFacilitator, Network, Price, VerifiedPayment, X402Layer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let facilitator = HttpFacilitator::builder("http://127.0.0.1:4021")
//!     .bearer_token("my-api-key")
//!     .build()?;
//! let payments = X402Layer::builder(facilitator, Network::Regtest)
//!     .public_base_url("https://api.example.com") // each lnbtc payment is bound to its URL
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "free" }))
//!     .route(
//!         "/weather",
//!         get(|paid: VerifiedPayment| async move { format!("sunny, thanks {}", paid.payer) })
//!             .route_layer(payments.charge(Price::sats(10))?), // 10 sat = 10,000 msat
//!     );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Cargo features
//!
//! | feature | what it adds |
//! |---|---|
//! | `paywall` (default) | the browser paywall (`x402_lightning::paywall`): browsers navigating to a priced route get an HTML 402 page that unlocks by itself once paid; pulls in `qrcode` (SVG only) |
//! | `axum` (default) | the [`VerifiedPayment`] extractor, and peer addresses from axum's `ConnectInfo` for the issuance limit (pulls in axum without its default features) |
//! | `mock` | `mock::MockFacilitator` and `mock::TestWallet` (pulls in axum and tokio) |
//! | `client` | the paying client `client::Payer` (a `reqwest-middleware` middleware), its budgets, receipts and wallets (`LndWallet`, `SimWallet`) and the seed flow's `Account` |
//! | `nwc` | `client::wallet::NwcWallet`, Nostr Wallet Connect (rust-nostr's `nwc` 0.44, about 43 more crates) |
//!
//! For tests, list the crate a second time, under `[dev-dependencies]`, with the mock:
//! `x402-lightning = { version = "0.1", features = ["mock"] }`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod clock;
pub mod facilitator;
pub mod guide;
pub mod header;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
pub mod layer;
pub mod lnbtc;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
pub mod network;
#[cfg(feature = "paywall")]
#[cfg_attr(docsrs, doc(cfg(feature = "paywall")))]
pub mod paywall;
pub mod price;
#[doc = include_str!("protocol.md")]
pub mod protocol {}
pub mod receiver;
pub mod v1;

/// The seed flow's invoice pre-checks (the same module as [`v1::invoice`]).
pub use crate::v1::invoice;
/// The seed flow's wire types (the same module as [`v1::types`]).
pub use crate::v1::types;

pub use crate::facilitator::{Facilitator, FacilitatorCall, FacilitatorError, HttpFacilitator};
pub use crate::layer::{ConfigError, Flows, VerifiedPayment, X402Layer, X402Service};
pub use crate::network::Network;
pub use crate::price::{DynamicPrice, Price, PriceTag, SettleMode};
pub use crate::types::{
    PaymentPayload, PaymentRequired, PaymentRequirements, RequirementsRequest, Scheme,
    SettleRequest, SettleResponse, SupportedResponse, VerifyRequest, VerifyResponse,
};
/// The secp256k1 node key type used for `payTo` and payees.
pub use bitcoin::secp256k1::PublicKey;
/// The parsed BOLT11 invoice type.
pub use lightning_invoice::Bolt11Invoice;

/// Compiles the README's code blocks as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
