//! The mock facilitator's books, checked by the seed scheme's own rules
//! ([`crate::v1::verify`]): steps 1–5 need no books ([`Rules::authenticate`]); steps 6–11 run
//! against the books under the caller's lock ([`Ledger::check`], [`Ledger::settle`]). No I/O
//! here.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bitcoin::hashes::Hash as _;
use bitcoin::hex::DisplayHex as _;
use bitcoin::secp256k1::PublicKey;
use lightning_invoice::Bolt11Invoice;
use serde_json::Value;

use crate::network::Network;
use crate::receiver::{InvoiceState, InvoiceStatus};
use crate::types::reason;
use crate::v1::verify::{self, Authorization, RecordedInvoice};

pub(crate) use crate::v1::verify::Rejection;

/// The fixed facts of the mock the rules compare against.
#[derive(Debug)]
pub(crate) struct Rules {
    pub(crate) network: Network,
    pub(crate) node_id: PublicKey,
}

impl Rules {
    /// Steps 1–5 of the seed scheme's checks on the mock's one network.
    pub(crate) fn authenticate(&self, request: &Value) -> Result<Authorization, Rejection> {
        verify::authenticate(request, &[self.network])
    }
}

/// An invoice the mock minted.
#[derive(Debug)]
struct InvoiceRecord {
    invoice: String,
    amount_msat: u64,
    expires_at: Duration,
    preimage: [u8; 32],
    standing: Standing,
}

/// Whether and how an invoice minted here was paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// Not paid.
    Open,
    /// Paid over the mock's Lightning network ([`Ledger::pay_invoice`]): its preimage was
    /// released to the payer.
    PaidOverLightning,
    /// Paid inside the books by a `/settle` of the seed flow: its preimage was never released,
    /// and the Lightning invoice can no longer be paid (a facilitator cancels it).
    SettledInBooks,
}

impl InvoiceRecord {
    fn is_paid(&self) -> bool {
        self.standing != Standing::Open
    }
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
            standing: Standing::Open,
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
        if record.is_paid() {
            return Err(PayError::AlreadyPaid);
        }
        record.standing = Standing::PaidOverLightning;
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
            .is_some_and(InvoiceRecord::is_paid)
    }

    /// Where the invoice of `payment_hash` stands, as `GET /invoices/{paymentHash}` reports it;
    /// `None` for an invoice not minted here. Its preimage only once it was paid over
    /// Lightning: one the seed flow settled inside the books is reported cancelled, since its
    /// preimage was never released and the Lightning invoice can no longer be paid. An unpaid
    /// invoice stays open after its expiry, as on a node that does not cancel expired invoices.
    pub(crate) fn invoice_status(&self, payment_hash: &[u8; 32]) -> Option<InvoiceStatus> {
        let record = self.invoices.get(payment_hash)?;
        let (state, preimage) = match record.standing {
            Standing::Open => (InvoiceState::Open, None),
            Standing::PaidOverLightning => (
                InvoiceState::Paid,
                Some(record.preimage.to_lower_hex_string()),
            ),
            Standing::SettledInBooks => (InvoiceState::Cancelled, None),
        };
        Some(InvoiceStatus {
            payment_hash: payment_hash.to_lower_hex_string(),
            state,
            preimage,
        })
    }

    /// Steps 6–11 against the books: recorded here, amount, payee, expiry (the mock allows
    /// no skew), not yet paid, balance. Returns the amount settling would pay.
    pub(crate) fn check(
        &self,
        request: &Authorization,
        node_id: &PublicKey,
        now: Duration,
    ) -> Result<u64, Rejection> {
        let payment_hash = request.decoded.payment_hash;
        let record = self.invoices.get(&payment_hash);
        let recorded = record.map(|record| RecordedInvoice {
            invoice: record.invoice.clone(),
            network: request.network,
            amount_msat: record.amount_msat,
        });
        request.check_recorded(recorded.as_ref(), node_id, now.as_secs(), 0)?;
        let Some(record) = record else {
            return Err(request.reject(reason::INVOICE_UNKNOWN));
        };
        if now >= record.expires_at {
            return Err(request.reject(reason::PAYMENT_EXPIRED));
        }
        if record.is_paid() {
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
        request: &Authorization,
        node_id: &PublicKey,
        now: Duration,
    ) -> Result<[u8; 32], Rejection> {
        let amount_msat = self.check(request, node_id, now)?;
        let payment_hash = request.decoded.payment_hash;
        if let Some(record) = self.invoices.get_mut(&payment_hash) {
            record.standing = Standing::SettledInBooks;
        }
        if let Some(balance) = self.balances.get_mut(&request.payer) {
            *balance = balance.saturating_sub(amount_msat);
        }
        Ok(payment_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::node::{InvoiceSpec, MockNode};

    /// Books holding one fresh invoice; its payment hash and preimage.
    fn books_with_one_invoice() -> (Ledger, String, [u8; 32], [u8; 32]) {
        let minted = MockNode::random()
            .mint(&InvoiceSpec::new(Network::Regtest, 10_000))
            .unwrap();
        let mut ledger = Ledger::default();
        ledger.record_invoice(&minted.invoice, minted.preimage);
        let payment_hash = minted.invoice.payment_hash().to_byte_array();
        (
            ledger,
            minted.invoice.to_string(),
            payment_hash,
            minted.preimage,
        )
    }

    #[test]
    fn an_invoice_is_open_until_paid_over_lightning_then_paid_with_its_preimage() {
        let (mut ledger, invoice, payment_hash, preimage) = books_with_one_invoice();
        let open = ledger.invoice_status(&payment_hash).unwrap();
        assert_eq!(open.payment_hash, payment_hash.to_lower_hex_string());
        assert_eq!((open.state, open.preimage), (InvoiceState::Open, None));

        let now = crate::invoice::unix_now();
        ledger.pay_invoice(&payment_hash, &invoice, now).unwrap();
        let paid = ledger.invoice_status(&payment_hash).unwrap();
        assert_eq!(paid.state, InvoiceState::Paid);
        assert_eq!(paid.preimage, Some(preimage.to_lower_hex_string()));
    }

    #[test]
    fn an_invoice_the_seed_flow_settled_is_cancelled_without_its_preimage() {
        let (mut ledger, invoice, payment_hash, _) = books_with_one_invoice();
        if let Some(record) = ledger.invoices.get_mut(&payment_hash) {
            record.standing = Standing::SettledInBooks;
        }
        let status = ledger.invoice_status(&payment_hash).unwrap();
        assert_eq!(
            (status.state, status.preimage),
            (InvoiceState::Cancelled, None)
        );
        let now = crate::invoice::unix_now();
        assert_eq!(
            ledger.pay_invoice(&payment_hash, &invoice, now),
            Err(PayError::AlreadyPaid)
        );
    }

    #[test]
    fn an_invoice_not_minted_here_has_no_status() {
        let (ledger, _, _, _) = books_with_one_invoice();
        assert!(ledger.invoice_status(&[7; 32]).is_none());
    }
}
