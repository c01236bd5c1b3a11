//! The paying client (feature `client`): pays a priced route's 402 and fetches what it sells.
//!
//! [`Payer`] is a [`reqwest-middleware`](reqwest_middleware) middleware, the shape of the
//! ecosystem's x402 clients (`x402-reqwest`): a request answered 402 is paid and sent once
//! more with the proof, and the paid response carries a [`Receipt`] in its extensions.
//!
//! - **`lnbtc`** (x402 v2, upstream `scheme_exact_lnbtc.md`, "Client Payment Construction"):
//!   the `PAYMENT-REQUIRED` challenge is checked as the scheme's client must (the request hash
//!   recomputed from the client's own request, payee, amount, expiry, network:
//!   [`lnbtc::client::select`](crate::lnbtc::client::select)), a [`Wallet`](wallet::Wallet)
//!   pays the invoice, and the preimage goes in `PAYMENT-SIGNATURE`.
//! - **The seed flow** (x402 v1, the [wire contract](crate::protocol), Parts 1 and 3): the v1 body's invoice is checked
//!   against its requirements, the [`Account`]'s key signs it into `X-PAYMENT`, and the
//!   facilitator pays it from the account's prepaid balance. [`Account`] also deposits,
//!   reads the balance and withdraws.
//!
//! A [`Budget`] (msat) is checked before anything is paid: a maximum per payment, a total per
//! rolling period, a routing-fee cap, the origins allowed to charge. One challenge is never paid
//! twice: see [`Payer`].
//!
//! ```no_run
//! use x402_lightning::client::{Budget, Payer, wallet::SimWallet};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let payer = Payer::builder()
//!     .wallet(SimWallet::new("http://127.0.0.1:4021/pay")?) // the demo's simulated node
//!     .budget(Budget::default().max_per_payment_msat(20_000)) // 20 sat at most
//!     .build()?;
//! // No redirects: a paid request's proof must not follow one to another URL.
//! let http = reqwest::Client::builder()
//!     .redirect(reqwest::redirect::Policy::none())
//!     .build()?;
//! let weather = payer
//!     .client(http)
//!     .get("http://127.0.0.1:3000/weather")
//!     .send()
//!     .await?
//!     .text()
//!     .await?;
//! println!("{weather}");
//! # Ok(())
//! # }
//! ```

pub mod account;
mod body;
pub mod budget;
pub mod offer;
pub mod payer;
pub mod receipt;
pub mod wallet;

pub use self::account::{Account, AccountError};
pub use self::budget::{Budget, BudgetError, BudgetRefusal};
pub use self::offer::{Challenge, Flow, Offer, Unpayable};
pub use self::payer::{PayEvent, Payer, PayerBuilder, PayerError, Quote};
pub use self::receipt::{PayError, Proof, Receipt, Settlement};
