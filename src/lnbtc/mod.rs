//! The upstream x402 scheme `exact` on `lnbtc` (x402 version 2, `upfront` flow): the client
//! pays a fresh BOLT11 invoice with any Lightning wallet and proves it with the preimage; the
//! invoice's description hash binds it to one request; the facilitator checks the proof and
//! records the payment hash once.
//!
//! Everything here is usable on its own, by the layer, the mock, a facilitator or a client:
//!
//! - [`types`]: the v2 wire types;
//! - [`header`]: the `PAYMENT-REQUIRED`, `PAYMENT-SIGNATURE` and `PAYMENT-RESPONSE` codecs;
//! - [`binding`]: the request hash (`http:1`, `mcp:1`) and the server adapter's origin rules;
//! - [`invoice`]: strict BOLT11 decoding with the scheme's checks;
//! - [`settle`]: the facilitator's ordered `/settle` validation;
//! - [`client`]: a client's checks before paying and of its payer's result;
//! - [`reason`]: the error vocabulary.
//!
//! Networks are [`Network`](crate::Network)s; their `lnbtc:` ids come from
//! [`Network::lnbtc_id`](crate::Network::lnbtc_id).

pub mod binding;
pub mod client;
pub mod header;
pub mod invoice;
pub mod reason;
pub mod settle;
pub mod types;

/// The default clock-skew allowance, in seconds.
pub const DEFAULT_SKEW_SECS: u64 = 60;
