//! The manual: guides to using the crate, one page per topic (documentation only).
//!
//! - [`pricing`]: prices on routes with `charge(..)`, price tables around a whole `Router`,
//!   dynamic prices, request checks, the two flows and when each takes the payment, what a 402
//!   offers, hooks, the builder's options, CORS for browsers;
//! - [`testing`]: the mock facilitator, the test wallet, injected faults, a handler tested alone,
//!   a facilitator called directly;
//! - [`security`]: what the layer answers, what it checks before content leaves, what it trusts
//!   the facilitator for, and the receiver's guarantee the operator must give;
//! - [`demo`]: a whole session with the demo server and its paying client, on the wire;
//! - [`conformance`]: upstream's `lnbtc` vectors, one test each, and the open questions' choices;
//! - [`test_suite`]: what each of the crate's test files covers, and what CI runs;
//! - [`status`]: what is done, what is not, and what to know before relying on it.
//!
//! The wire contract itself is the module [`protocol`](crate::protocol).

#[doc = include_str!("pricing.md")]
pub mod pricing {}

#[doc = include_str!("testing.md")]
pub mod testing {}

#[doc = include_str!("security.md")]
pub mod security {}

#[doc = include_str!("demo.md")]
pub mod demo {}

#[doc = include_str!("conformance.md")]
pub mod conformance {}

#[doc = include_str!("test_suite.md")]
pub mod test_suite {}

#[doc = include_str!("status.md")]
pub mod status {}
