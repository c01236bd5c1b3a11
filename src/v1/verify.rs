//! The facilitator's `/verify` and `/settle` checks of the seed flow, in the order of the
//! facilitator service's contract for prepaid accounts (first failure wins), as pure functions
//! on the untrusted JSON the facilitator received.
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

#[cfg(all(test, feature = "mock"))]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::mock::{InvoiceSpec, MockNode};
    use crate::types::{LightningExtra, PaymentRequirements, Scheme};
    use crate::v1::AccountKey;

    const NOW: u64 = 1_800_000_000;

    fn setup() -> (MockNode, AccountKey, PaymentRequirements) {
        let node = MockNode::random();
        let spec = InvoiceSpec {
            created_at: Duration::from_secs(NOW),
            expiry: Duration::from_secs(60),
            ..InvoiceSpec::new(Network::Regtest, 10_000)
        };
        let invoice = node.mint(&spec).expect("mints").invoice.to_string();
        let requirements = PaymentRequirements {
            scheme: Scheme::Exact,
            network: Network::Regtest,
            max_amount_required: 10_000,
            asset: ASSET_BTC.into(),
            pay_to: node.pay_to().to_string(),
            resource: "https://example.com/x".into(),
            description: String::new(),
            mime_type: String::new(),
            output_schema: None,
            max_timeout_seconds: 60,
            extra: LightningExtra::new(invoice),
        };
        let key = AccountKey::from_secret_hex(&"07".repeat(32)).expect("a key");
        (node, key, requirements)
    }

    fn body(key: &AccountKey, requirements: &PaymentRequirements) -> Value {
        json!({
            "x402Version": 1,
            "paymentPayload": key.authorize(requirements).expect("an invoice"),
            "paymentRequirements": requirements,
        })
    }

    fn recorded(requirements: &PaymentRequirements) -> RecordedInvoice {
        RecordedInvoice {
            invoice: requirements.extra.invoice.clone(),
            network: Network::Regtest,
            amount_msat: 10_000,
        }
    }

    #[test]
    fn a_signed_authorization_of_a_recorded_invoice_passes_every_step() {
        let (node, key, requirements) = setup();
        let authorization =
            authenticate(&body(&key, &requirements), &[Network::Regtest]).expect("authentic");
        assert_eq!(authorization.payer_id(), key.account());
        assert_eq!(authorization.network_id, "lightning-regtest");
        let recorded = recorded(&requirements);
        assert_eq!(
            authorization.check_recorded(Some(&recorded), &node.node_id(), NOW, 60),
            Ok(())
        );
        // Expiry: the invoice's end plus the skew.
        let late = authorization.check_recorded(Some(&recorded), &node.node_id(), NOW + 120, 60);
        assert_eq!(late.map_err(|r| r.reason), Err(reason::PAYMENT_EXPIRED));
    }

    #[test]
    fn the_first_failed_step_wins() {
        let (_, key, requirements) = setup();
        let networks = [Network::Regtest];
        // Version and signature both wrong: the version.
        let mut wrong = body(&key, &requirements);
        wrong["x402Version"] = json!(2);
        wrong["paymentPayload"]["payload"]["signature"] = json!("00".repeat(64));
        assert_eq!(
            authenticate(&wrong, &networks).map(|_| ()),
            Err(Rejection::new(reason::INVALID_X402_VERSION))
        );
        // Scheme and network wrong: the scheme.
        let mut wrong = body(&key, &requirements);
        wrong["paymentRequirements"]["scheme"] = json!("upto");
        wrong["paymentPayload"]["network"] = json!("lightning");
        assert_eq!(
            authenticate(&wrong, &networks).map(|_| ()),
            Err(Rejection::new(reason::INVALID_SCHEME))
        );
        // A network in either form, but the same one in both places.
        let mut either = body(&key, &requirements);
        either["paymentRequirements"]["network"] = json!(Network::Regtest.lnbtc_id());
        let authorization = authenticate(&either, &networks).expect("either form");
        assert_eq!(authorization.network_id, Network::Regtest.lnbtc_id());
        let mut wrong = body(&key, &requirements);
        wrong["paymentPayload"]["network"] = json!("lightning-testnet");
        assert_eq!(
            authenticate(&wrong, &[Network::Regtest, Network::Testnet]).map(|_| ()),
            Err(Rejection::new(reason::INVALID_NETWORK))
        );
        // Substituted invoice and bad signature: the payload.
        let mut wrong = body(&key, &requirements);
        wrong["paymentRequirements"]["extra"]["invoice"] = json!("lnbcrt1other");
        wrong["paymentPayload"]["payload"]["signature"] = json!("00".repeat(64));
        assert_eq!(
            authenticate(&wrong, &networks).map(|_| ()),
            Err(Rejection::new(reason::INVALID_PAYLOAD))
        );
        // Another key's signature: no payer named.
        let other = AccountKey::from_secret_hex(&"08".repeat(32)).expect("a key");
        let mut wrong = body(&key, &requirements);
        wrong["paymentPayload"]["payload"]["signature"] = json!(
            other
                .sign_authorization(&requirements.extra.invoice)
                .expect("an invoice")
        );
        assert_eq!(
            authenticate(&wrong, &networks).map(|_| ()),
            Err(Rejection::new(reason::INVALID_SIGNATURE))
        );
    }

    #[test]
    fn recorded_checks_run_in_order_and_name_the_payer() {
        let (node, key, requirements) = setup();
        let authorization =
            authenticate(&body(&key, &requirements), &[Network::Regtest]).expect("authentic");
        let node_id = node.node_id();
        let unknown = authorization.check_recorded(None, &node_id, NOW, 60);
        assert_eq!(
            unknown,
            Err(Rejection {
                reason: reason::INVOICE_UNKNOWN,
                payer: Some(key.account())
            })
        );
        let mut other_amount = recorded(&requirements);
        other_amount.amount_msat = 9_999;
        let stranger = MockNode::random().node_id();
        // Amount and payee both wrong: the amount.
        assert_eq!(
            authorization
                .check_recorded(Some(&other_amount), &stranger, NOW, 60)
                .map_err(|r| r.reason),
            Err(reason::INVOICE_AMOUNT)
        );
        assert_eq!(
            authorization
                .check_recorded(Some(&recorded(&requirements)), &stranger, NOW, 60)
                .map_err(|r| r.reason),
            Err(reason::INVOICE_PAYEE)
        );
    }
}
