//! A simulated Lightning node, for the demo and tests: a key in memory that signs real BOLT11
//! invoices and keeps their preimages. **It receives and sends no real payment**: it plays the
//! whole Lightning network.
//!
//! - [`SimulatedNode::pay`] (the service's `POST /pay`) pays one of its own invoices and hands
//!   the preimage out, so the node then reports it settled; never a cancelled, expired, paid or
//!   mainnet one (that would give real content away).
//! - [`SimulatedNode::external_invoice`] (`POST /pay/external`) mints an invoice of a simulated
//!   *other* node, which the node pays when a withdrawal asks, with the outcome the test chose:
//!   succeed (with a routing fee of 0.1 %, rounded up), fail, or stay in flight until
//!   [`SimulatedNode::resolve_external`].
//!
//! Its memory dies with the process: a restarted service has a new simulated node (use LND for
//! anything that must survive a restart).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bitcoin::hex::DisplayHex as _;
use bitcoin::secp256k1::PublicKey;
use tokio::sync::Notify;
use x402_lightning::Network;
use x402_lightning::clock::Clock;
use x402_lightning::mock::{InvalidSecretKey, InvoiceSpec, LightningPayment, MockNode};

use super::{
    Cancelled, InvoiceDescription, InvoiceLookup, InvoiceRequest, InvoiceState, LightningNode,
    NodeError, NodeFuture, PaymentRequest, PaymentStatus,
};

/// How many invoices the node keeps at most; the expired ones are dropped first.
const MAX_INVOICES: usize = 100_000;

/// The simulated routing fee: 1 msat per 1,000 msat, rounded up.
const FEE_PPM: u64 = 1_000;

/// The routing fee the simulated network charges for `amount_msat`.
pub fn simulated_fee(amount_msat: u64) -> u64 {
    amount_msat.saturating_mul(FEE_PPM).div_ceil(1_000_000)
}

/// Why the simulated network refused to pay an invoice (`POST /pay`: 404, 410, 409, 403).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    /// Not an invoice this node minted (or not an invoice at all).
    #[error("unknown invoice: not minted by this simulated node")]
    Unknown,
    /// The invoice has expired.
    #[error("invoice expired")]
    Expired,
    /// The invoice was already paid.
    #[error("invoice already paid")]
    AlreadyPaid,
    /// The invoice was cancelled (a seed-flow settle paid it inside the books).
    #[error("invoice cancelled: it can no longer be paid")]
    Cancelled,
    /// A mainnet invoice: a simulated payment would give real content away.
    #[error("the simulated node never pays a mainnet invoice")]
    Mainnet,
}

/// What a withdrawal paying an external invoice meets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExternalOutcome {
    /// Paid at once, with the simulated fee (fails when over the fee limit).
    #[default]
    Succeed,
    /// Fails at once, nothing paid.
    Fail,
    /// In flight until resolved.
    Pending,
}

/// An invoice the node minted.
#[derive(Debug)]
struct Issued {
    invoice: String,
    preimage: [u8; 32],
    amount_msat: u64,
    /// Unix seconds after which it can no longer be paid.
    end: u64,
    state: InvoiceState,
}

/// An invoice of the simulated other node.
#[derive(Debug)]
struct External {
    preimage: [u8; 32],
    amount_msat: u64,
    outcome: ExternalOutcome,
}

#[derive(Debug, Default)]
struct State {
    issued: HashMap<[u8; 32], Issued>,
    external: HashMap<[u8; 32], External>,
    /// Outgoing payments by payment hash.
    payments: HashMap<[u8; 32], PaymentStatus>,
}

/// A simulated node: see the [module docs](self).
#[derive(Debug)]
pub struct SimulatedNode {
    key: MockNode,
    other: MockNode,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Woken whenever a payment in flight is decided.
    decided: Notify,
}

impl SimulatedNode {
    /// A node with a random key, minting at `clock`'s time.
    pub fn random(clock: Arc<dyn Clock>) -> Self {
        Self::with_key(MockNode::random(), clock)
    }

    /// A node whose secret key is 64 hex characters.
    ///
    /// # Errors
    /// The text is not a valid secp256k1 secret key.
    pub fn from_secret_hex(hex: &str, clock: Arc<dyn Clock>) -> Result<Self, InvalidSecretKey> {
        MockNode::from_secret_hex(hex).map(|key| Self::with_key(key, clock))
    }

    fn with_key(key: MockNode, clock: Arc<dyn Clock>) -> Self {
        Self {
            key,
            other: MockNode::random(),
            clock,
            state: Mutex::default(),
            decided: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        self.clock.unix_now().as_secs()
    }

    /// The node's public key.
    pub fn pay_to(&self) -> PublicKey {
        self.key.node_id()
    }

    /// The simulated other node's key: the payee of [`external_invoice`](Self::external_invoice)s.
    pub fn other_node_id(&self) -> PublicKey {
        self.other.node_id()
    }

    /// Pays `invoice`, an invoice this node minted, and returns its preimage; the node reports
    /// it settled from then on.
    ///
    /// # Errors
    /// [`PayError::Unknown`] for any other text, [`PayError::Mainnet`] for a mainnet invoice
    /// (never paid), [`PayError::Expired`] past its expiry, [`PayError::Cancelled`] once
    /// cancelled, [`PayError::AlreadyPaid`] the second time.
    pub fn pay(&self, invoice: &str) -> Result<LightningPayment, PayError> {
        let decoded =
            x402_lightning::lnbtc::invoice::decode(invoice).map_err(|_| PayError::Unknown)?;
        if decoded.currency == Network::Bitcoin.currency() {
            return Err(PayError::Mainnet);
        }
        let payment_hash = decoded.payment_hash;
        let now = self.now();
        let mut state = self.state();
        let entry = state
            .issued
            .get_mut(&payment_hash)
            .filter(|entry| entry.invoice == invoice)
            .ok_or(PayError::Unknown)?;
        match entry.state {
            InvoiceState::Settled | InvoiceState::Accepted => return Err(PayError::AlreadyPaid),
            InvoiceState::Canceled => return Err(PayError::Cancelled),
            InvoiceState::Open => {}
        }
        if now > entry.end {
            return Err(PayError::Expired);
        }
        entry.state = InvoiceState::Settled;
        Ok(LightningPayment {
            preimage: entry.preimage.to_lower_hex_string(),
            payment_hash: payment_hash.to_lower_hex_string(),
            amount_msat: entry.amount_msat,
        })
    }

    /// Mints an invoice of the simulated other node for `amount_msat` on `network`, expiring in
    /// an hour, that a withdrawal paying it meets with `outcome`. Returns the invoice and its
    /// payment hash.
    ///
    /// # Errors
    /// The invoice cannot be minted (an amount BOLT11 cannot carry).
    pub fn external_invoice(
        &self,
        network: Network,
        amount_msat: u64,
        outcome: ExternalOutcome,
    ) -> Result<(String, [u8; 32]), NodeError> {
        let spec = InvoiceSpec {
            description: "simulated external payee".to_owned(),
            created_at: self.clock.unix_now(),
            ..InvoiceSpec::new(network, amount_msat)
        };
        let minted = self
            .other
            .mint(&spec)
            .map_err(|err| NodeError::Refused(err.to_string()))?;
        let payment_hash = *minted.invoice.payment_hash().as_ref();
        self.state().external.insert(
            payment_hash,
            External {
                preimage: minted.preimage,
                amount_msat,
                outcome,
            },
        );
        Ok((minted.invoice.to_string(), payment_hash))
    }

    /// Decides an external invoice's payment: if in flight, it succeeds (with the simulated
    /// fee) or fails now; if not sent yet, that is what the payment will meet. Returns the
    /// payment's state, `None` for an unknown payment hash.
    pub fn resolve_external(
        &self,
        payment_hash: &[u8; 32],
        succeed: bool,
    ) -> Option<PaymentStatus> {
        let mut state = self.state();
        let external = state.external.get_mut(payment_hash)?;
        external.outcome = if succeed {
            ExternalOutcome::Succeed
        } else {
            ExternalOutcome::Fail
        };
        let decided = if succeed {
            PaymentStatus::Succeeded {
                preimage: external.preimage,
                fee_msat: simulated_fee(external.amount_msat),
            }
        } else {
            PaymentStatus::Failed {
                reason: "FAILURE_REASON_NO_ROUTE".to_owned(),
            }
        };
        let status = match state.payments.get_mut(payment_hash) {
            Some(status @ PaymentStatus::InFlight) => {
                *status = decided;
                self.decided.notify_waiters();
                status.clone()
            }
            Some(status) => status.clone(),
            None => PaymentStatus::InFlight,
        };
        Some(status)
    }

    fn mint(&self, request: &InvoiceRequest) -> Result<String, NodeError> {
        let now = self.clock.unix_now();
        let (description, description_hash) = match &request.description {
            InvoiceDescription::Hash(hash) => (String::new(), Some(*hash)),
            InvoiceDescription::Text(text) => (text.clone(), None),
        };
        let spec = InvoiceSpec {
            network: request.network,
            amount_msat: request.amount_msat,
            description,
            description_hash,
            created_at: now,
            expiry: Duration::from_secs(request.expiry_secs),
        };
        let minted = self
            .key
            .mint(&spec)
            .map_err(|err| NodeError::Refused(err.to_string()))?;
        let invoice = minted.invoice.to_string();
        let mut state = self.state();
        if state.issued.len() >= MAX_INVOICES {
            let now = now.as_secs();
            state.issued.retain(|_, entry| entry.end >= now);
        }
        if state.issued.len() >= MAX_INVOICES {
            return Err(NodeError::Refused(format!(
                "the simulated node holds {MAX_INVOICES} unexpired invoices"
            )));
        }
        state.issued.insert(
            *minted.invoice.payment_hash().as_ref(),
            Issued {
                invoice: invoice.clone(),
                preimage: minted.preimage,
                amount_msat: request.amount_msat,
                end: now.as_secs().saturating_add(request.expiry_secs),
                state: InvoiceState::Open,
            },
        );
        Ok(invoice)
    }

    /// Starts paying an external invoice; the status it has right away.
    fn start_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<([u8; 32], PaymentStatus), NodeError> {
        let decoded = x402_lightning::lnbtc::invoice::decode(request.invoice)
            .map_err(|err| NodeError::Refused(format!("not a payable invoice: {err}")))?;
        let payment_hash = decoded.payment_hash;
        let mut state = self.state();
        match state.payments.get(&payment_hash) {
            Some(PaymentStatus::Succeeded { .. }) => {
                return Err(NodeError::Status {
                    status: 409,
                    message: "invoice is already paid".to_owned(),
                });
            }
            Some(PaymentStatus::InFlight) => {
                return Err(NodeError::Status {
                    status: 409,
                    message: "payment is in transition".to_owned(),
                });
            }
            Some(PaymentStatus::Failed { .. }) | None => {}
        }
        let failed = |reason: &str| PaymentStatus::Failed {
            reason: reason.to_owned(),
        };
        let status = if decoded.currency == Network::Bitcoin.currency() {
            failed("the simulated node never pays a mainnet invoice")
        } else if decoded.end() <= self.now() {
            failed("FAILURE_REASON_INCORRECT_PAYMENT_DETAILS")
        } else {
            match state.external.get(&payment_hash) {
                None => failed("FAILURE_REASON_NO_ROUTE"),
                Some(external) => match external.outcome {
                    ExternalOutcome::Fail => failed("FAILURE_REASON_NO_ROUTE"),
                    ExternalOutcome::Pending => PaymentStatus::InFlight,
                    ExternalOutcome::Succeed => {
                        let fee_msat = simulated_fee(external.amount_msat);
                        if fee_msat > request.max_fee_msat {
                            failed("FAILURE_REASON_NO_ROUTE")
                        } else {
                            PaymentStatus::Succeeded {
                                preimage: external.preimage,
                                fee_msat,
                            }
                        }
                    }
                },
            }
        };
        state.payments.insert(payment_hash, status.clone());
        Ok((payment_hash, status))
    }

    /// The payment's status, waiting up to `wait` while it is in flight.
    async fn await_decided(
        &self,
        payment_hash: &[u8; 32],
        wait: Duration,
    ) -> Option<PaymentStatus> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.decided.notified();
            let status = self.state().payments.get(payment_hash).cloned();
            match status {
                Some(PaymentStatus::InFlight) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Some(PaymentStatus::InFlight);
                    }
                }
                other => return other,
            }
        }
    }
}

impl LightningNode for SimulatedNode {
    fn node_id(&self) -> NodeFuture<'_, PublicKey> {
        let key = self.pay_to();
        Box::pin(async move { Ok(key) })
    }

    fn create_invoice<'a>(&'a self, request: &'a InvoiceRequest) -> NodeFuture<'a, String> {
        Box::pin(async move { self.mint(request) })
    }

    fn lookup_invoice<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
    ) -> NodeFuture<'a, Option<InvoiceLookup>> {
        Box::pin(async move {
            Ok(self
                .state()
                .issued
                .get(payment_hash)
                .map(|issued| InvoiceLookup {
                    state: issued.state,
                    preimage: Some(issued.preimage),
                    amount_paid_msat: if issued.state == InvoiceState::Settled {
                        issued.amount_msat
                    } else {
                        0
                    },
                }))
        })
    }

    fn cancel_invoice<'a>(&'a self, payment_hash: &'a [u8; 32]) -> NodeFuture<'a, Cancelled> {
        Box::pin(async move {
            let mut state = self.state();
            let Some(issued) = state.issued.get_mut(payment_hash) else {
                return Ok(Cancelled::Unknown);
            };
            Ok(match issued.state {
                InvoiceState::Settled | InvoiceState::Accepted => Cancelled::AlreadyPaid,
                InvoiceState::Open | InvoiceState::Canceled => {
                    issued.state = InvoiceState::Canceled;
                    Cancelled::Cancelled
                }
            })
        })
    }

    fn send_payment<'a>(
        &'a self,
        request: PaymentRequest<'a>,
        wait: Duration,
    ) -> NodeFuture<'a, PaymentStatus> {
        Box::pin(async move {
            let (payment_hash, status) = self.start_payment(&request)?;
            if status != PaymentStatus::InFlight {
                return Ok(status);
            }
            Ok(self
                .await_decided(&payment_hash, wait)
                .await
                .unwrap_or(PaymentStatus::InFlight))
        })
    }

    fn track_payment<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
        wait: Duration,
    ) -> NodeFuture<'a, Option<PaymentStatus>> {
        Box::pin(async move { Ok(self.await_decided(payment_hash, wait).await) })
    }
}

#[cfg(test)]
mod tests {
    use x402_lightning::clock::ManualClock;

    use super::*;

    fn request(expiry_secs: u64) -> InvoiceRequest {
        InvoiceRequest {
            network: Network::Regtest,
            amount_msat: 10_000,
            description: InvoiceDescription::Hash([7; 32]),
            expiry_secs,
        }
    }

    #[tokio::test]
    async fn pays_its_own_invoices_once_and_never_after_expiry() {
        let clock = ManualClock::at_unix(Duration::from_secs(1_700_000_000));
        let node = SimulatedNode::random(Arc::new(clock.clone()));
        let invoice = node.create_invoice(&request(60)).await.expect("mints");
        let decoded = x402_lightning::lnbtc::invoice::decode(&invoice).expect("decodes");
        assert_eq!(decoded.payee, node.pay_to());
        assert_eq!(decoded.description_hash, Some([7; 32]));
        assert_eq!(decoded.expiry_secs, 60);

        let paid = node.pay(&invoice).expect("pays");
        assert!(
            decoded.is_paid_by(
                &<[u8; 32]>::try_from(
                    bitcoin::hex::FromHex::from_hex(&paid.preimage).unwrap_or(vec![])
                )
                .expect("32-byte preimage")
            )
        );
        assert_eq!(node.pay(&invoice), Err(PayError::AlreadyPaid));
        let settled = node
            .lookup_invoice(&decoded.payment_hash)
            .await
            .expect("looks up");
        assert_eq!(
            settled.map(|found| found.state),
            Some(InvoiceState::Settled)
        );

        let late = node.create_invoice(&request(60)).await.expect("mints");
        clock.advance(Duration::from_secs(61));
        assert_eq!(node.pay(&late), Err(PayError::Expired));
        assert_eq!(node.pay("lnbcrt1junk"), Err(PayError::Unknown));
        let stranger = SimulatedNode::random(Arc::new(clock.clone()));
        let foreign = stranger.create_invoice(&request(60)).await.expect("mints");
        assert_eq!(node.pay(&foreign), Err(PayError::Unknown));

        let mainnet = InvoiceRequest {
            network: Network::Bitcoin,
            ..request(60)
        };
        let invoice = node.create_invoice(&mainnet).await.expect("mints");
        assert_eq!(node.pay(&invoice), Err(PayError::Mainnet));
    }
}
