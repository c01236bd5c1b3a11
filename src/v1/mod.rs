//! The seed scheme, `exact` on Lightning with x402 version 1, as a library (the
//! [wire contract](crate::protocol) and the facilitator service's prepaid accounts; the seed
//! document `scheme_exact_lightning.md`): the client signs an authorization for the facilitator
//! to pay one invoice from the client's prepaid account.
//!
//! One module per concern, each usable on its own, by the layer, the mock, the facilitator
//! service and a paying client alike (as [`lnbtc`](crate::lnbtc) is for x402 version 2):
//!
//! - [`types`]: the wire types (requirements, payloads, the facilitator calls) and the reason
//!   vocabulary ([`types::reason`]);
//! - [`header`]: the `X-PAYMENT` / `X-PAYMENT-RESPONSE` codec (re-exported from
//!   [`crate::header`], which also names the lnbtc headers);
//! - [`invoice`]: the resource server's pre-checks of an invoice (network, amount, payee,
//!   expiry) and of a `/requirements` answer;
//! - [`sign`]: the signed messages (payment authorization, withdrawal, account read),
//!   [`AccountKey`] that signs them, and their verification;
//! - [`verify`]: the facilitator's ordered `/verify` and `/settle` checks, as pure functions on
//!   untrusted JSON;
//! - [`accounts`]: the wire types of the facilitator service's accounts (deposits, the signed
//!   read, withdrawals).

pub mod accounts;
pub mod invoice;
pub mod sign;
pub mod types;
pub mod verify;

/// The `X-PAYMENT` / `X-PAYMENT-RESPONSE` codec.
pub mod header {
    pub use crate::header::{
        HeaderError, X_PAYMENT, X_PAYMENT_RESPONSE, decode_payment_header,
        decode_payment_response_header, encode_payment_header, encode_payment_response_header,
    };
}

pub use self::sign::{AccountKey, InvalidAccountKey, NotAnInvoice};
pub use self::types::{X402_VERSION, reason};
