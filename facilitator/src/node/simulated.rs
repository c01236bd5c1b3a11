//! A simulated Lightning node, for the demo and tests: a key in memory that signs real BOLT11
//! invoices and keeps their preimages. **It receives no real payment**: [`SimulatedNode::pay`]
//! plays the whole Lightning network and hands the preimage out, as the mock facilitator's
//! `POST /pay` does, except for mainnet invoices, which it never pays (that would give real
//! content away).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bitcoin::hex::DisplayHex as _;
use bitcoin::secp256k1::PublicKey;
use x402_lightning::Network;
use x402_lightning::clock::Clock;
use x402_lightning::mock::{InvalidSecretKey, InvoiceSpec, LightningPayment, MockNode};

use super::{InvoiceRequest, LightningNode, NodeError, NodeFuture};

/// How many invoices the node keeps at most; the expired ones are dropped first.
const MAX_INVOICES: usize = 100_000;

/// Why the simulated network refused to pay an invoice (`POST /pay`: 404, 410, 409).
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
    /// A mainnet invoice: a simulated payment would give real content away.
    #[error("the simulated node never pays a mainnet invoice")]
    Mainnet,
}

/// An invoice the node minted.
#[derive(Debug)]
struct Issued {
    invoice: String,
    preimage: [u8; 32],
    amount_msat: u64,
    /// Unix seconds after which it can no longer be paid.
    end: u64,
    paid: bool,
}

/// A simulated node: see the [module docs](self).
#[derive(Debug)]
pub struct SimulatedNode {
    key: MockNode,
    clock: Arc<dyn Clock>,
    issued: Mutex<HashMap<[u8; 32], Issued>>,
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
            clock,
            issued: Mutex::default(),
        }
    }

    /// The node's public key.
    pub fn pay_to(&self) -> PublicKey {
        self.key.node_id()
    }

    /// Pays `invoice`, an invoice this node minted, and returns its preimage.
    ///
    /// # Errors
    /// [`PayError::Unknown`] for any other text, [`PayError::Mainnet`] for a mainnet invoice
    /// (never paid), [`PayError::Expired`] past its expiry, [`PayError::AlreadyPaid`] the second
    /// time.
    pub fn pay(&self, invoice: &str) -> Result<LightningPayment, PayError> {
        let decoded =
            x402_lightning::lnbtc::invoice::decode(invoice).map_err(|_| PayError::Unknown)?;
        if decoded.currency == Network::Bitcoin.currency() {
            return Err(PayError::Mainnet);
        }
        let payment_hash = decoded.payment_hash;
        let now = self.clock.unix_now().as_secs();
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = issued
            .get_mut(&payment_hash)
            .filter(|entry| entry.invoice == invoice)
            .ok_or(PayError::Unknown)?;
        if now > entry.end {
            return Err(PayError::Expired);
        }
        if entry.paid {
            return Err(PayError::AlreadyPaid);
        }
        entry.paid = true;
        Ok(LightningPayment {
            preimage: entry.preimage.to_lower_hex_string(),
            payment_hash: payment_hash.to_lower_hex_string(),
            amount_msat: entry.amount_msat,
        })
    }

    fn mint(&self, request: &InvoiceRequest) -> Result<String, NodeError> {
        let now = self.clock.unix_now();
        let spec = InvoiceSpec {
            network: request.network,
            amount_msat: request.amount_msat,
            description: String::new(),
            description_hash: Some(request.description_hash),
            created_at: now,
            expiry: Duration::from_secs(request.expiry_secs),
        };
        let minted = self
            .key
            .mint(&spec)
            .map_err(|err| NodeError::Refused(err.to_string()))?;
        let invoice = minted.invoice.to_string();
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        if issued.len() >= MAX_INVOICES {
            let now = now.as_secs();
            issued.retain(|_, entry| entry.end >= now);
        }
        if issued.len() >= MAX_INVOICES {
            return Err(NodeError::Refused(format!(
                "the simulated node holds {MAX_INVOICES} unexpired invoices"
            )));
        }
        issued.insert(
            *minted.invoice.payment_hash().as_ref(),
            Issued {
                invoice: invoice.clone(),
                preimage: minted.preimage,
                amount_msat: request.amount_msat,
                end: now.as_secs().saturating_add(request.expiry_secs),
                paid: false,
            },
        );
        Ok(invoice)
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
}

#[cfg(test)]
mod tests {
    use x402_lightning::clock::ManualClock;

    use super::*;

    fn request(expiry_secs: u64) -> InvoiceRequest {
        InvoiceRequest {
            network: Network::Regtest,
            amount_msat: 10_000,
            description_hash: [7; 32],
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
