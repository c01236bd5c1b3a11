//! The mock facilitator's books: the invoices it minted, the clients' balances, and the rules of
//! `/verify` and `/settle` from PROTOCOL.md. No I/O: the server holds it behind a mutex.

use std::collections::HashMap;
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
use crate::types::{VerifyRequest, X402_VERSION, reason};

/// An invoice the mock minted.
#[derive(Debug)]
struct InvoiceRecord {
    invoice: String,
    amount_msat: u64,
    expires_at: Duration,
    paid: bool,
}

/// An authorization that passed every rule: what settling it pays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authorization {
    pub(crate) payment_hash: [u8; 32],
    pub(crate) payer: PublicKey,
    pub(crate) payer_id: String,
    pub(crate) amount_msat: u64,
}

/// An authorization that failed a rule, with the payer once the signature has named one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) reason: &'static str,
    pub(crate) payer: Option<String>,
}

impl Rejection {
    fn new(reason: &'static str) -> Self {
        Self {
            reason,
            payer: None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Ledger {
    network: Network,
    pay_to: String,
    node_id: PublicKey,
    invoices: HashMap<[u8; 32], InvoiceRecord>,
    balances: HashMap<PublicKey, u64>,
}

impl Ledger {
    pub(crate) fn new(network: Network, node_id: PublicKey) -> Self {
        Self {
            network,
            pay_to: node_id.serialize().to_lower_hex_string(),
            node_id,
            invoices: HashMap::new(),
            balances: HashMap::new(),
        }
    }

    /// Remembers an invoice as minted here.
    pub(crate) fn record_invoice(&mut self, invoice: &Bolt11Invoice) {
        let record = InvoiceRecord {
            invoice: invoice.to_string(),
            amount_msat: invoice.amount_milli_satoshis().unwrap_or(0),
            expires_at: invoice.expires_at().unwrap_or(Duration::MAX),
            paid: false,
        };
        self.invoices
            .insert(invoice.payment_hash().to_byte_array(), record);
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

    /// The rules of `/verify`, in order: version, scheme, network, consistency of payload and
    /// requirements, signature by `from`, invoice minted here, amount, payee, expiry, not yet
    /// paid, balance.
    pub(crate) fn check(
        &self,
        request: &VerifyRequest,
        now: Duration,
    ) -> Result<Authorization, Rejection> {
        let payment = &request.payment_payload;
        let required = &request.payment_requirements;
        if request.x402_version != X402_VERSION || payment.x402_version != X402_VERSION {
            return Err(Rejection::new(reason::INVALID_X402_VERSION));
        }
        // Scheme is `exact` by type: anything else failed to parse (see `server::verdict_for`).
        if payment.network != self.network || required.network != self.network {
            return Err(Rejection::new(reason::INVALID_NETWORK));
        }
        if payment.payload.invoice != required.extra.invoice {
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
        let payment_hash = invoice.payment_hash().to_byte_array();
        let record = self
            .invoices
            .get(&payment_hash)
            .filter(|record| record.invoice == payment.payload.invoice)
            .ok_or_else(|| reject(reason::INVOICE_UNKNOWN))?;
        if Network::from_currency(&invoice.currency()) != Some(self.network) {
            return Err(reject(reason::INVALID_NETWORK));
        }
        if record.amount_msat != required.max_amount_required {
            return Err(reject(reason::INVOICE_AMOUNT));
        }
        if invoice.get_payee_pub_key() != self.node_id || required.pay_to != self.pay_to {
            return Err(reject(reason::INVOICE_PAYEE));
        }
        if now >= record.expires_at {
            return Err(reject(reason::PAYMENT_EXPIRED));
        }
        if record.paid {
            return Err(reject(reason::DUPLICATE_SETTLEMENT));
        }
        if self.balance(&payer) < record.amount_msat {
            return Err(reject(reason::INSUFFICIENT_FUNDS));
        }
        Ok(Authorization {
            payment_hash,
            payer,
            payer_id,
            amount_msat: record.amount_msat,
        })
    }

    /// The rules of `/settle`: those of `/verify`, then pay: mark the invoice paid and debit the
    /// payer, atomically with the checks (the caller holds the lock).
    pub(crate) fn settle(
        &mut self,
        request: &VerifyRequest,
        now: Duration,
    ) -> Result<Authorization, Rejection> {
        let authorization = self.check(request, now)?;
        if let Some(record) = self.invoices.get_mut(&authorization.payment_hash) {
            record.paid = true;
        }
        if let Some(balance) = self.balances.get_mut(&authorization.payer) {
            *balance = balance.saturating_sub(authorization.amount_msat);
        }
        Ok(authorization)
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
