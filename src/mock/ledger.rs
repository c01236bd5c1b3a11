//! The mock facilitator's books and the rules of `/verify` and `/settle` from the
//! [wire contract](crate::protocol).
//!
//! The rules run in two steps so that the expensive half needs no lock: [`Rules::authenticate`]
//! checks what the request says on its own (versions, network, signature, the invoice's payee),
//! then [`Ledger::check`] and [`Ledger::settle`] check it against the books (invoice minted here,
//! amount, expiry, not yet paid, balance) under the caller's lock. No I/O here.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bitcoin::hashes::Hash as _;
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use bitcoin::secp256k1::PublicKey;
use bitcoin::secp256k1::ecdsa::Signature;
use lightning_invoice::Bolt11Invoice;

use super::keys::SECP;
use super::wallet::authorization_message;
use crate::invoice::parse_node_id;
use crate::network::Network;
use crate::types::{ASSET_BTC, VerifyRequest, X402_VERSION, reason};

/// An authorization that failed a rule, with the payer once the signature has named one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) reason: &'static str,
    pub(crate) payer: Option<String>,
}

impl Rejection {
    pub(crate) fn new(reason: &'static str) -> Self {
        Self {
            reason,
            payer: None,
        }
    }
}

/// A request that passed the rules needing no books: signed by its payer, self-consistent.
#[derive(Clone, Debug)]
pub(crate) struct Authenticated {
    payment_hash: [u8; 32],
    invoice: String,
    required_msat: u64,
    /// The invoice is payable to the mock's node and `payTo` names it.
    payee_is_ours: bool,
    payer: PublicKey,
    pub(crate) payer_id: String,
}

impl Authenticated {
    fn reject(&self, reason: &'static str) -> Rejection {
        Rejection {
            reason,
            payer: Some(self.payer_id.clone()),
        }
    }
}

/// The fixed facts of the mock the rules compare against.
#[derive(Debug)]
pub(crate) struct Rules {
    pub(crate) network: Network,
    pub(crate) node_id: PublicKey,
}

impl Rules {
    /// The rules that need no books, in order: x402 version, network, asset, payload invoice =
    /// requirements invoice, signature by `from`, a parsable invoice on this network.
    pub(crate) fn authenticate(&self, request: &VerifyRequest) -> Result<Authenticated, Rejection> {
        let payment = &request.payment_payload;
        let required = &request.payment_requirements;
        if request.x402_version != X402_VERSION || payment.x402_version != X402_VERSION {
            return Err(Rejection::new(reason::INVALID_X402_VERSION));
        }
        // Scheme is `exact` by type: anything else failed to parse (see `server`).
        if payment.network != self.network || required.network != self.network {
            return Err(Rejection::new(reason::INVALID_NETWORK));
        }
        if required.asset != ASSET_BTC || payment.payload.invoice != required.extra.invoice {
            return Err(Rejection::new(reason::INVALID_PAYMENT_REQUIREMENTS));
        }

        let payer = verify_signature(
            &payment.payload.invoice,
            &payment.payload.signature,
            &payment.payload.from,
        )?;
        let payer_id = payer.serialize().to_lower_hex_string();
        let reject = |reason| Rejection {
            reason,
            payer: Some(payer_id.clone()),
        };

        let invoice: Bolt11Invoice = payment
            .payload
            .invoice
            .parse()
            .map_err(|_| reject(reason::INVALID_PAYLOAD))?;
        if Network::from_currency(&invoice.currency()) != Some(self.network) {
            return Err(reject(reason::INVALID_NETWORK));
        }
        let pay_to = parse_node_id(strip_0x(&required.pay_to)).ok();
        let payee_is_ours =
            invoice.get_payee_pub_key() == self.node_id && pay_to == Some(self.node_id);
        Ok(Authenticated {
            payment_hash: invoice.payment_hash().to_byte_array(),
            invoice: payment.payload.invoice.clone(),
            required_msat: required.max_amount_required,
            payee_is_ours,
            payer,
            payer_id,
        })
    }
}

/// An invoice the mock minted.
#[derive(Debug)]
struct InvoiceRecord {
    invoice: String,
    amount_msat: u64,
    expires_at: Duration,
    preimage: [u8; 32],
    /// Paid: by a `/settle` of the seed flow, or over Lightning ([`Ledger::pay_invoice`]).
    paid: bool,
}

/// The mutable books: invoices minted, balances, and the `lnbtc` replay set.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    invoices: HashMap<[u8; 32], InvoiceRecord>,
    balances: HashMap<PublicKey, u64>,
    /// Replay keys (`network:payment_hash`) of the `lnbtc` proofs settled here.
    upfront_settled: HashSet<String>,
}

/// An invoice paid over the mock's Lightning network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LightningPayment {
    /// The preimage, 64 lowercase hex characters: the proof of payment.
    pub preimage: String,
    /// The payment hash, 64 lowercase hex characters.
    pub payment_hash: String,
    /// The amount paid, in msat.
    pub amount_msat: u64,
}

/// Why the mock's Lightning network refused to pay an invoice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    /// Not an invoice this mock minted (or not an invoice at all).
    #[error("unknown invoice: not minted by this mock")]
    Unknown,
    /// The invoice has expired.
    #[error("invoice expired")]
    Expired,
    /// The invoice was already paid.
    #[error("invoice already paid")]
    AlreadyPaid,
}

impl Ledger {
    /// Remembers an invoice as minted here, with the preimage that pays it.
    pub(crate) fn record_invoice(&mut self, invoice: &Bolt11Invoice, preimage: [u8; 32]) {
        let record = InvoiceRecord {
            invoice: invoice.to_string(),
            amount_msat: invoice.amount_milli_satoshis().unwrap_or(0),
            expires_at: invoice.expires_at().unwrap_or(Duration::MAX),
            preimage,
            paid: false,
        };
        self.invoices
            .insert(invoice.payment_hash().to_byte_array(), record);
    }

    /// Pays `invoice` over the mock's Lightning network at `now`: only an invoice minted
    /// here, unexpired and unpaid; marks it paid and releases its preimage.
    pub(crate) fn pay_invoice(
        &mut self,
        payment_hash: &[u8; 32],
        invoice: &str,
        now: Duration,
    ) -> Result<LightningPayment, PayError> {
        let record = self
            .invoices
            .get_mut(payment_hash)
            .filter(|record| record.invoice == invoice)
            .ok_or(PayError::Unknown)?;
        if now >= record.expires_at {
            return Err(PayError::Expired);
        }
        if record.paid {
            return Err(PayError::AlreadyPaid);
        }
        record.paid = true;
        Ok(LightningPayment {
            preimage: record.preimage.to_lower_hex_string(),
            payment_hash: payment_hash.to_lower_hex_string(),
            amount_msat: record.amount_msat,
        })
    }

    /// Records an `lnbtc` replay key; `false` when it was already there (a duplicate).
    pub(crate) fn record_upfront(&mut self, replay_key: String) -> bool {
        self.upfront_settled.insert(replay_key)
    }

    pub(crate) fn fund(&mut self, client: PublicKey, msat: u64) {
        let balance = self.balances.entry(client).or_default();
        *balance = balance.saturating_add(msat);
    }

    pub(crate) fn balance(&self, client: &PublicKey) -> u64 {
        self.balances.get(client).copied().unwrap_or(0)
    }

    pub(crate) fn is_paid(&self, payment_hash: &[u8; 32]) -> bool {
        self.invoices
            .get(payment_hash)
            .is_some_and(|record| record.paid)
    }

    /// The rules that need the books, in order: invoice minted here, amount, payee, expiry,
    /// not yet paid, balance. Returns the amount settling would pay.
    pub(crate) fn check(&self, request: &Authenticated, now: Duration) -> Result<u64, Rejection> {
        let record = self
            .invoices
            .get(&request.payment_hash)
            .filter(|record| record.invoice == request.invoice)
            .ok_or_else(|| request.reject(reason::INVOICE_UNKNOWN))?;
        if record.amount_msat != request.required_msat {
            return Err(request.reject(reason::INVOICE_AMOUNT));
        }
        if !request.payee_is_ours {
            return Err(request.reject(reason::INVOICE_PAYEE));
        }
        if now >= record.expires_at {
            return Err(request.reject(reason::PAYMENT_EXPIRED));
        }
        if record.paid {
            return Err(request.reject(reason::DUPLICATE_SETTLEMENT));
        }
        if self.balance(&request.payer) < record.amount_msat {
            return Err(request.reject(reason::INSUFFICIENT_FUNDS));
        }
        Ok(record.amount_msat)
    }

    /// The rules of [`Self::check`], then pay: mark the invoice paid and debit the payer,
    /// atomically with the checks (the caller holds the lock). Returns the payment hash.
    pub(crate) fn settle(
        &mut self,
        request: &Authenticated,
        now: Duration,
    ) -> Result<[u8; 32], Rejection> {
        let amount_msat = self.check(request, now)?;
        if let Some(record) = self.invoices.get_mut(&request.payment_hash) {
            record.paid = true;
        }
        if let Some(balance) = self.balances.get_mut(&request.payer) {
            *balance = balance.saturating_sub(amount_msat);
        }
        Ok(request.payment_hash)
    }
}

/// Checks that `signature` is `from`'s compact ECDSA signature over SHA-256 of `invoice`.
///
/// Hex may carry a `0x` prefix; high-S signatures are accepted as their low-S twin.
fn verify_signature(invoice: &str, signature: &str, from: &str) -> Result<PublicKey, Rejection> {
    let from =
        parse_node_id(strip_0x(from)).map_err(|_| Rejection::new(reason::INVALID_PAYLOAD))?;
    let bytes = <[u8; 64]>::from_hex(strip_0x(signature))
        .map_err(|_| Rejection::new(reason::INVALID_SIGNATURE))?;
    let mut signature =
        Signature::from_compact(&bytes).map_err(|_| Rejection::new(reason::INVALID_SIGNATURE))?;
    signature.normalize_s();
    SECP.verify_ecdsa(&authorization_message(invoice), &signature, &from)
        .map_err(|_| Rejection::new(reason::INVALID_SIGNATURE))?;
    Ok(from)
}

fn strip_0x(hex: &str) -> &str {
    hex.strip_prefix("0x").unwrap_or(hex)
}
