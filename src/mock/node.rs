//! The mock facilitator's Lightning node: a key that mints real, signed BOLT11 invoices.

use std::time::Duration;

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use lightning_invoice::{
    Bolt11Invoice, Bolt11InvoiceDescription, Currency, Description, InvoiceBuilder, PaymentSecret,
    Sha256,
};
use rand::{RngCore as _, thread_rng};

use super::keys::{InvalidSecretKey, KeyPair, SECP};
use crate::network::Network;

/// BOLT11 caps a description at 639 bytes; longer ones are committed to by hash instead.
const MAX_DESCRIPTION_BYTES: usize = 639;

/// The final CLTV delta written into minted invoices (LDK's default).
const MIN_FINAL_CLTV_EXPIRY_DELTA: u64 = 18;

/// A Lightning node key that mints signed invoices, as a facilitator's node would.
#[derive(Clone, Debug)]
pub struct MockNode {
    keys: KeyPair,
}

/// What to mint: see [`MockNode::mint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceSpec {
    /// The network (BOLT11 currency) of the invoice.
    pub network: Network,
    /// The amount in msat.
    pub amount_msat: u64,
    /// The description; over 639 bytes it is committed to by hash. Ignored when
    /// `description_hash` is set.
    pub description: String,
    /// The invoice's only description: this hash (BOLT11 `h`), as the `lnbtc` scheme binds an
    /// invoice to a request.
    pub description_hash: Option<[u8; 32]>,
    /// Creation time, since the Unix epoch (whole seconds are kept).
    pub created_at: Duration,
    /// How long the invoice can be paid after `created_at`.
    pub expiry: Duration,
}

impl InvoiceSpec {
    /// An invoice on `network` for `amount_msat`, created now, valid for an hour.
    pub fn new(network: Network, amount_msat: u64) -> Self {
        Self {
            network,
            amount_msat,
            description: String::new(),
            description_hash: None,
            created_at: crate::invoice::unix_now(),
            expiry: Duration::from_secs(3600),
        }
    }
}

/// A minted invoice and the preimage that pays it.
#[derive(Clone, Debug)]
pub struct MintedInvoice {
    /// The signed invoice.
    pub invoice: Bolt11Invoice,
    /// The payment preimage: SHA-256 of it is the payment hash.
    pub preimage: [u8; 32],
}

/// Minting failed: the spec cannot be written as a BOLT11 invoice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot mint invoice: {0}")]
pub struct MintError(pub String);

impl MockNode {
    /// A node with a fresh random key.
    pub fn random() -> Self {
        Self {
            keys: KeyPair::random(),
        }
    }

    /// A node with this key.
    pub fn from_secret_key(secret: SecretKey) -> Self {
        Self {
            keys: KeyPair::from_secret(secret),
        }
    }

    /// A node whose key is given as 64 hex characters.
    pub fn from_secret_hex(hex: &str) -> Result<Self, InvalidSecretKey> {
        KeyPair::from_secret_hex(hex).map(|keys| Self { keys })
    }

    /// The node public key.
    pub fn node_id(&self) -> PublicKey {
        self.keys.public()
    }

    /// The node public key, the `payTo` of its invoices (the same key as
    /// [`node_id`](Self::node_id)); its `to_string()` is the 66 hex characters of the wire.
    pub fn pay_to(&self) -> PublicKey {
        self.keys.public()
    }

    /// The node secret key as 64 hex characters.
    pub fn secret_hex(&self) -> String {
        self.keys.secret_hex()
    }

    /// Mints and signs an invoice with a fresh random preimage and payment secret.
    pub fn mint(&self, spec: &InvoiceSpec) -> Result<MintedInvoice, MintError> {
        self.mint_on(spec.network.currency(), spec)
    }

    /// Mints on any BOLT11 currency, ignoring `spec.network` (for forging wrong-network invoices).
    pub(crate) fn mint_on(
        &self,
        currency: Currency,
        spec: &InvoiceSpec,
    ) -> Result<MintedInvoice, MintError> {
        let mut rng = thread_rng();
        let mut preimage = [0u8; 32];
        rng.fill_bytes(&mut preimage);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);

        let description = if let Some(hash) = spec.description_hash {
            Bolt11InvoiceDescription::Hash(Sha256(sha256::Hash::from_byte_array(hash)))
        } else if spec.description.len() <= MAX_DESCRIPTION_BYTES {
            let text = Description::new(spec.description.clone())
                .map_err(|err| MintError(err.to_string()))?;
            Bolt11InvoiceDescription::Direct(text)
        } else {
            let hash = sha256::Hash::hash(spec.description.as_bytes());
            Bolt11InvoiceDescription::Hash(Sha256(hash))
        };

        let invoice = InvoiceBuilder::new(currency)
            .invoice_description(description)
            .amount_milli_satoshis(spec.amount_msat)
            .payment_hash(sha256::Hash::hash(&preimage))
            .payment_secret(PaymentSecret(secret))
            .duration_since_epoch(Duration::from_secs(spec.created_at.as_secs()))
            .expiry_time(spec.expiry)
            .min_final_cltv_expiry_delta(MIN_FINAL_CLTV_EXPIRY_DELTA)
            .build_signed(|message| SECP.sign_ecdsa_recoverable(message, self.keys.secret()))
            .map_err(|err| MintError(err.to_string()))?;
        Ok(MintedInvoice { invoice, preimage })
    }
}
