//! The facilitator's `/verify` and `/settle` checks of the seed flow, in `PROTOCOL.md` Part 3's
//! order (first failure wins), as pure functions on the untrusted JSON the facilitator received.
//!
//! | step | check | reason |
//! |---|---|---|
//! | 1 | the request's and the payment's `x402Version` are 1 | `invalid_x402_version` |
//! | 2 | `scheme` is `exact` in the payment and the requirements | `invalid_scheme` |
//! | 3 | the network is served, the same in the payment and the requirements (either id form) | `invalid_network` |
//! | 4 | the fields are present and well formed, `payload.invoice` = `requirements.extra.invoice`, a BOLT11 invoice of that network | `invalid_payload` (`invalid_network` for an invoice of another chain) |
//! | 5 | `signature` is `from`'s over the invoice | `invalid_exact_lightning_payload_signature` |
//! | 6 | the invoice was recorded by this facilitator (`/requirements`) | `invalid_exact_lightning_invoice_unknown` |
//! | 7 | invoice amount = `maxAmountRequired` = recorded amount | `invalid_exact_lightning_invoice_amount` |
//! | 8 | invoice payee = `payTo` = the facilitator's node | `invalid_exact_lightning_invoice_payee` |
//! | 9 | the invoice has not expired (within the skew) | `payment_expired` |
//! | 10 | not paid already, by either flow | `duplicate_settlement` |
//! | 11 | the account's available balance covers the amount | `insufficient_funds` |
//!
//! [`authenticate`] runs steps 1–5 (no state), [`Authorization::check_recorded`] steps 6–9
//! against what the caller recorded; steps 10 and 11 need the caller's books, and their reasons
//! are [`reason::DUPLICATE_SETTLEMENT`] and [`reason::INSUFFICIENT_FUNDS`].

use bitcoin::hex::DisplayHex as _;
use bitcoin::secp256k1::PublicKey;
use serde_json::Value;

use crate::lnbtc::invoice::{DecodedInvoice, decode};
use crate::network::Network;
use crate::v1::sign::{self, SignatureError};
use crate::v1::types::{ASSET_BTC, X402_VERSION, msat_string, reason};

/// A check that failed: the reason, and the payer once the signature named one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    /// The `invalidReason` / `errorReason`.
    pub reason: &'static str,
    /// The account whose signature checked (steps 6 and later), 66 lowercase hex.
    pub payer: Option<String>,
}

impl Rejection {
    fn new(reason: &'static str) -> Self {
        Self {
            reason,
            payer: None,
        }
    }
}

/// An authorization that passed steps 1–5: signed by its account, self-consistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The network.
    pub network: Network,
    /// The requirements' network id exactly as written (`lightning-regtest` or `lnbtc:…`):
    /// answers echo it.
    pub network_id: String,
    /// The invoice, as sent.
    pub invoice: String,
    /// The invoice, decoded (strictly: signature checked, one spelling).
    pub decoded: DecodedInvoice,
    /// `maxAmountRequired`, msat.
    pub max_amount_required: u64,
    /// `payTo`, as sent.
    pub pay_to: String,
    /// The account that signed.
    pub payer: PublicKey,
}

impl Authorization {
    /// The account that signed, 66 lowercase hex (`payer` in answers).
    pub fn payer_id(&self) -> String {
        self.payer.serialize().to_lower_hex_string()
    }

    /// The payment hash, 64 lowercase hex (`transaction` in a settle's answer).
    pub fn payment_hash_hex(&self) -> String {
        self.decoded.payment_hash_hex()
    }

    /// The invoice's amount, msat (equal to `maxAmountRequired` once step 7 passed).
    pub fn amount_msat(&self) -> u64 {
        self.max_amount_required
    }

    /// The replay key this payment shares with the `lnbtc` flow:
    /// `lnbtc:<chain>:<payment hash>` (Part 3, "An invoice is paid once, whichever flow").
    pub fn replay_key(&self) -> String {
        crate::lnbtc::settle::replay_key(self.network, &self.decoded.payment_hash)
    }

    /// A rejection naming this payer.
    pub fn reject(&self, reason: &'static str) -> Rejection {
        Rejection {
            reason,
            payer: Some(self.payer_id()),
        }
    }

    /// Steps 6–9 against `recorded`, what the facilitator recorded under the invoice's payment
    /// hash (`None`: nothing), its node `node_id`, at `now` (Unix seconds) with `skew_secs`.
    ///
    /// # Errors
    /// The first failed step's [`Rejection`], naming the payer.
    pub fn check_recorded(
        &self,
        recorded: Option<&RecordedInvoice>,
        node_id: &PublicKey,
        now: u64,
        skew_secs: u64,
    ) -> Result<(), Rejection> {
        let recorded = recorded
            .filter(|recorded| recorded.invoice == self.invoice && recorded.network == self.network)
            .ok_or_else(|| self.reject(reason::INVOICE_UNKNOWN))?;
        if self.decoded.amount_msat != Some(self.max_amount_required)
            || recorded.amount_msat != self.max_amount_required
        {
            return Err(self.reject(reason::INVOICE_AMOUNT));
        }
        let pay_to = sign::parse_account(&self.pay_to).ok();
        if self.decoded.payee != *node_id || pay_to != Some(*node_id) {
            return Err(self.reject(reason::INVOICE_PAYEE));
        }
        if now >= self.decoded.end().saturating_add(skew_secs) {
            return Err(self.reject(reason::PAYMENT_EXPIRED));
        }
        Ok(())
    }
}

/// What a facilitator recorded of an invoice it handed out at `/requirements`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedInvoice {
    /// The BOLT11 text handed out.
    pub invoice: String,
    /// Its network.
    pub network: Network,
    /// Its amount, msat.
    pub amount_msat: u64,
}

/// Parses a network id in either form: an x402 v1 name (`lightning-regtest`) or an `lnbtc:` id.
pub fn parse_network_id(text: &str) -> Option<Network> {
    text.parse::<Network>()
        .ok()
        .or_else(|| Network::from_lnbtc_id(text))
}

/// Steps 1–5 on a `/verify` or `/settle` body, for a facilitator serving `networks`.
///
/// # Errors
/// The first failed step's [`Rejection`] (with the payer from step 5 on: never before its
/// signature checked).
pub fn authenticate(request: &Value, networks: &[Network]) -> Result<Authorization, Rejection> {
    let payment = &request["paymentPayload"];
    let required = &request["paymentRequirements"];
    let version = |value: &Value| value.as_u64() == Some(u64::from(X402_VERSION));
    if !version(&request["x402Version"]) || !version(&payment["x402Version"]) {
        return Err(Rejection::new(reason::INVALID_X402_VERSION));
    }
    let exact = |value: &Value| value.as_str() == Some("exact");
    if !exact(&payment["scheme"]) || !exact(&required["scheme"]) {
        return Err(Rejection::new(reason::INVALID_SCHEME));
    }
    let network_id = required["network"].as_str().unwrap_or_default();
    let network = parse_network_id(network_id)
        .filter(|network| networks.contains(network))
        .filter(|network| payment["network"].as_str().and_then(parse_network_id) == Some(*network))
        .ok_or_else(|| Rejection::new(reason::INVALID_NETWORK))?;

    let malformed = || Rejection::new(reason::INVALID_PAYLOAD);
    let text = |value: &Value| value.as_str().map(str::to_owned).ok_or_else(malformed);
    let authorization = &payment["payload"];
    let invoice = text(&authorization["invoice"])?;
    let signature = text(&authorization["signature"])?;
    let from = text(&authorization["from"])?;
    let max_amount_required = required["maxAmountRequired"]
        .as_str()
        .and_then(msat_string::parse)
        .ok_or_else(malformed)?;
    let pay_to = text(&required["payTo"])?;
    if required["asset"]
        .as_str()
        .is_some_and(|asset| asset != ASSET_BTC)
        || required["extra"]["invoice"].as_str() != Some(invoice.as_str())
    {
        return Err(malformed());
    }
    let decoded = decode(&invoice).map_err(|_| malformed())?;
    if decoded.currency != network.currency() {
        return Err(Rejection::new(reason::INVALID_NETWORK));
    }
    let payer = match sign::verify(&sign::authorization_message(&invoice), &signature, &from) {
        Ok(payer) => payer,
        Err(SignatureError::Account) => return Err(malformed()),
        Err(_) => return Err(Rejection::new(reason::INVALID_SIGNATURE)),
    };
    Ok(Authorization {
        network,
        network_id: network_id.to_owned(),
        invoice,
        decoded,
        max_amount_required,
        pay_to,
        payer,
    })
}

/// The network id an answer echoes for `request`: the requirements' as written when it names a
/// network, else `""`.
pub fn echoed_network(request: &Value) -> String {
    request["paymentRequirements"]["network"]
        .as_str()
        .filter(|id| parse_network_id(id).is_some())
        .unwrap_or_default()
        .to_owned()
}
