//! The test wallet: a client key that turns [`PaymentRequirements`] into an `X-PAYMENT` value
//! the mock facilitator accepts, and forges bad ones for tests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use serde_json::json;

use super::keys::{InvalidSecretKey, KeyPair};
use super::{LightningPayment, MockFacilitator, PayError};
use crate::header::encode_payment_header;
use crate::lnbtc;
use crate::lnbtc::client::{ClientError, ClientPolicy, IntendedRequest, PayerResult, PayerStatus};
use crate::network::Network;
use crate::types::{ExactLightningPayload, PaymentPayload, PaymentRequirements, X402_VERSION};
use crate::v1::AccountKey;

/// A client key known to the mock facilitator (fund it with
/// [`MockFacilitator::fund`](super::MockFacilitator::fund)).
#[derive(Clone, Debug)]
pub struct TestWallet {
    keys: KeyPair,
}

/// Ways to spoil an `X-PAYMENT` value, for tests of everything that must refuse it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// A valid authorization with one bit of the signature flipped.
    TamperedSignature,
    /// Signed by another key than `from`.
    SignedByAnotherKey,
    /// An honest signature over another invoice than the one required.
    AnotherInvoice(String),
    /// Claims another network than the requirements'.
    Network(Network),
    /// Claims another x402 version.
    Version(u32),
    /// Claims a scheme other than `exact`.
    Scheme(String),
    /// Not base64 at all.
    NotBase64,
    /// Base64 of something that is not JSON.
    NotJson,
}

/// The secret key of [`TestWallet::demo`]: public, for demos only.
pub const DEMO_WALLET_SECRET: &str =
    "de40de40de40de40de40de40de40de40de40de40de40de40de40de40de40de40";

impl TestWallet {
    /// The demo wallet: a fixed, publicly known key ([`DEMO_WALLET_SECRET`]) that the demo and
    /// the mock facilitator example fund, so `cargo run --example pay` can pay without setup.
    /// Never use it for anything but demos.
    pub fn demo() -> Self {
        Self::from_secret_hex(DEMO_WALLET_SECRET).unwrap_or_else(|_| Self::random())
    }

    /// A wallet with a fresh random key.
    pub fn random() -> Self {
        Self {
            keys: KeyPair::random(),
        }
    }

    /// A wallet with this key.
    pub fn from_secret_key(secret: SecretKey) -> Self {
        Self {
            keys: KeyPair::from_secret(secret),
        }
    }

    /// A wallet whose key is given as 64 hex characters.
    pub fn from_secret_hex(hex: &str) -> Result<Self, InvalidSecretKey> {
        KeyPair::from_secret_hex(hex).map(|keys| Self { keys })
    }

    /// The wallet's key as the seed scheme's [`AccountKey`], which also signs withdrawals and
    /// account reads.
    pub fn account_key(&self) -> AccountKey {
        AccountKey::from_secret_key(*self.keys.secret())
    }

    /// The client's public key.
    pub fn public_key(&self) -> PublicKey {
        self.keys.public()
    }

    /// The client's identity on the wire (`from`): its public key as 66 hex characters.
    pub fn id(&self) -> String {
        self.keys.public_hex()
    }

    /// The secret key as 64 hex characters (for handing to another client).
    pub fn secret_hex(&self) -> String {
        self.keys.secret_hex()
    }

    /// The signature authorizing payment of `invoice`: compact ECDSA, 128 hex characters.
    pub fn sign(&self, invoice: &str) -> String {
        self.account_key()
            .sign(&crate::v1::sign::authorization_message(invoice))
    }

    /// The payload authorizing payment of the requirements' invoice.
    pub fn authorize(&self, requirements: &PaymentRequirements) -> PaymentPayload {
        let invoice = requirements.extra.invoice.clone();
        PaymentPayload {
            x402_version: X402_VERSION,
            scheme: requirements.scheme,
            network: requirements.network,
            payload: ExactLightningPayload::new(invoice.clone(), self.sign(&invoice), self.id()),
        }
    }

    /// The `X-PAYMENT` header value paying the requirements' invoice.
    pub fn pay(&self, requirements: &PaymentRequirements) -> String {
        encode_payment_header(&self.authorize(requirements))
    }

    /// Pays `invoice` over `mock`'s Lightning network and returns its preimage (see
    /// [`MockFacilitator::pay_invoice`]).
    pub fn pay_invoice(
        &self,
        mock: &MockFacilitator,
        invoice: &str,
    ) -> Result<LightningPayment, PayError> {
        mock.pay_invoice(invoice)
    }

    /// Pays an `lnbtc` challenge as a client must: checks it against the `intended` request at
    /// `now` (Unix seconds) with [`lnbtc::client::select`](crate::lnbtc::client::select) on
    /// `mock`'s network, pays the invoice through `mock`, checks the result, and returns the
    /// `PAYMENT-SIGNATURE` header value. Errors carry the scheme's reasons; a refused payment is
    /// reported as `exact_lnbtc_payment_not_paid`.
    pub fn pay_lnbtc(
        &self,
        mock: &MockFacilitator,
        required: &lnbtc::types::PaymentRequired,
        intended: &IntendedRequest<'_>,
        now: u64,
    ) -> Result<String, ClientError> {
        let policy = ClientPolicy {
            networks: vec![mock.network()],
            ..ClientPolicy::default()
        };
        let selected = lnbtc::client::select(required, intended, &policy, now)?;
        let invoice = selected
            .requirements
            .invoice()
            .unwrap_or_default()
            .to_owned();
        let result = match self.pay_invoice(mock, &invoice) {
            Ok(paid) => PayerResult {
                status: PayerStatus::Paid,
                invoice,
                payment_hash: paid.payment_hash,
                amount_msat: paid.amount_msat,
                preimage: Some(paid.preimage),
            },
            Err(err) => {
                return Err(ClientError {
                    reason: lnbtc::reason::PAYMENT_NOT_PAID,
                    detail: err.to_string(),
                });
            }
        };
        let payment = selected.into_payment(&result)?;
        Ok(lnbtc::header::encode_payment_signature(&payment))
    }

    /// An `X-PAYMENT` header value spoiled in the way `forgery` says.
    pub fn forge(&self, requirements: &PaymentRequirements, forgery: Forgery) -> String {
        let mut payment = self.authorize(requirements);
        match forgery {
            Forgery::TamperedSignature => {
                let flipped = match payment.payload.signature.pop() {
                    Some('0') => '1',
                    _ => '0',
                };
                payment.payload.signature.push(flipped);
            }
            Forgery::SignedByAnotherKey => {
                payment.payload.signature = TestWallet::random().sign(&payment.payload.invoice);
            }
            Forgery::AnotherInvoice(invoice) => {
                payment.payload.signature = self.sign(&invoice);
                payment.payload.invoice = invoice;
            }
            Forgery::Network(network) => payment.network = network,
            Forgery::Version(version) => payment.x402_version = version,
            Forgery::Scheme(scheme) => {
                let mut value = json!(payment);
                value["scheme"] = json!(scheme);
                return BASE64.encode(value.to_string());
            }
            Forgery::NotBase64 => return "not base64 at all!".to_owned(),
            Forgery::NotJson => return BASE64.encode(b"{\"x402Version\": 1,"),
        }
        encode_payment_header(&payment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_wallet_has_the_published_key() {
        assert_eq!(TestWallet::demo().secret_hex(), DEMO_WALLET_SECRET);
    }
}
