//! The seed scheme's signatures (the [wire contract](crate::protocol)'s signing rule, and the
//! accounts' messages): 64-byte compact ECDSA (low-S), hex, over SHA-256 of a UTF-8 message, by
//! an account key.
//!
//! Each purpose signs its own message, so no signature serves another:
//!
//! | purpose | message |
//! |---|---|
//! | a payment authorization (`X-PAYMENT`) | the BOLT11 invoice string itself |
//! | a withdrawal | `x402-lightning withdrawal <invoice> <maxFeeMsat>` |
//! | an account read (`X402-Account-Signature`) | `x402-lightning account <network> <account> <unix seconds>` |
//!
//! [`AccountKey`] signs (a client's key: it never leaves the client); the `verify_*` functions
//! are what a facilitator checks.

use std::fmt;
use std::sync::LazyLock;

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::{All, Message, PublicKey, Secp256k1, SecretKey};

use crate::header::encode_payment_header;
use crate::v1::types::{ExactLightningPayload, PaymentPayload, PaymentRequirements, X402_VERSION};

/// One signing and verifying context: creating one is not free.
static SECP: LazyLock<Secp256k1<All>> = LazyLock::new(Secp256k1::new);

/// The header of a signed account read: `<unix seconds>.<128 hex signature>`.
pub const ACCOUNT_SIGNATURE_HEADER: &str = "x402-account-signature";

/// The message a payment authorization signs: the invoice string.
pub fn authorization_message(invoice: &str) -> String {
    invoice.to_owned()
}

/// The message a withdrawal signs: `x402-lightning withdrawal <invoice> <maxFeeMsat>`.
pub fn withdrawal_message(invoice: &str, max_fee_msat: u64) -> String {
    format!("x402-lightning withdrawal {invoice} {max_fee_msat}")
}

/// The message an account read signs: `x402-lightning account <network> <account> <unix>`,
/// `network` exactly as the request writes it (`lightning-regtest` or `lnbtc:…`).
pub fn account_read_message(network: &str, account: &str, unix_secs: u64) -> String {
    format!("x402-lightning account {network} {account} {unix_secs}")
}

fn digest(message: &str) -> Message {
    Message::from_digest(sha256::Hash::hash(message.as_bytes()).to_byte_array())
}

/// A secret key given as hex that is not a valid secp256k1 secret key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a 64-hex-character secp256k1 secret key")]
pub struct InvalidAccountKey;

/// An account's key: signs payment authorizations, withdrawals and account reads. `Debug`
/// shows the account (the public key) only.
#[derive(Clone)]
pub struct AccountKey {
    secret: SecretKey,
    public: PublicKey,
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("account", &self.account())
            .finish_non_exhaustive()
    }
}

impl AccountKey {
    /// The key of this secret.
    pub fn from_secret_key(secret: SecretKey) -> Self {
        Self {
            public: PublicKey::from_secret_key(&SECP, &secret),
            secret,
        }
    }

    /// The key whose secret is 64 hex characters.
    ///
    /// # Errors
    /// [`InvalidAccountKey`] when the text is not a valid secp256k1 secret key.
    pub fn from_secret_hex(hex: &str) -> Result<Self, InvalidAccountKey> {
        let bytes = <[u8; 32]>::from_hex(hex.trim()).map_err(|_| InvalidAccountKey)?;
        SecretKey::from_slice(&bytes)
            .map(Self::from_secret_key)
            .map_err(|_| InvalidAccountKey)
    }

    /// The secret key (to store it; never log it).
    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The account: the compressed public key, 66 lowercase hex characters (`from` on the
    /// wire).
    pub fn account(&self) -> String {
        self.public.serialize().to_lower_hex_string()
    }

    /// Signs `message` (SHA-256 of its UTF-8 bytes): 128 lowercase hex characters. Private: the
    /// public methods sign one purpose's message each, so that nothing a server sends can turn a
    /// payment into a withdrawal.
    pub(crate) fn sign(&self, message: &str) -> String {
        SECP.sign_ecdsa(&digest(message), &self.secret)
            .serialize_compact()
            .to_lower_hex_string()
    }

    /// The signature authorizing payment of `invoice`.
    ///
    /// # Errors
    /// [`NotAnInvoice`] when `invoice` is not a BOLT11 invoice (signature checked, one
    /// spelling): an authorization signs the invoice's text itself, so signing anything else
    /// (say, a withdrawal's message a hostile 402 passed off as an invoice) would hand out a
    /// signature for another purpose.
    pub fn sign_authorization(&self, invoice: &str) -> Result<String, NotAnInvoice> {
        crate::lnbtc::invoice::decode(invoice).map_err(NotAnInvoice)?;
        Ok(self.sign(&authorization_message(invoice)))
    }

    /// The payload authorizing payment of the requirements' invoice (`X-PAYMENT`, decoded).
    /// Check the invoice against the requirements first (`crate::invoice::check_requirements_invoice`).
    ///
    /// # Errors
    /// [`NotAnInvoice`] when `extra.invoice` is not a BOLT11 invoice.
    pub fn authorize(
        &self,
        requirements: &PaymentRequirements,
    ) -> Result<PaymentPayload, NotAnInvoice> {
        let invoice = requirements.extra.invoice.clone();
        let signature = self.sign_authorization(&invoice)?;
        Ok(PaymentPayload {
            x402_version: X402_VERSION,
            scheme: requirements.scheme,
            network: requirements.network,
            payload: ExactLightningPayload::new(invoice, signature, self.account()),
        })
    }

    /// The `X-PAYMENT` header value paying the requirements' invoice.
    ///
    /// # Errors
    /// [`NotAnInvoice`] when `extra.invoice` is not a BOLT11 invoice.
    pub fn payment_header(
        &self,
        requirements: &PaymentRequirements,
    ) -> Result<String, NotAnInvoice> {
        self.authorize(requirements)
            .map(|payload| encode_payment_header(&payload))
    }

    /// The signature of a withdrawal paying `invoice` with at most `max_fee_msat` of fees.
    pub fn sign_withdrawal(&self, invoice: &str, max_fee_msat: u64) -> String {
        self.sign(&withdrawal_message(invoice, max_fee_msat))
    }

    /// The `X402-Account-Signature` value reading this account on `network` (as the request's
    /// path writes it) at `unix_secs`: `<unix seconds>.<signature>`.
    pub fn account_read_signature(&self, network: &str, unix_secs: u64) -> String {
        let message = account_read_message(network, &self.account(), unix_secs);
        format!("{unix_secs}.{}", self.sign(&message))
    }
}

/// What was to be authorized is not a BOLT11 invoice (why, in the decoder's words).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a BOLT11 invoice, refusing to sign it: {0}")]
pub struct NotAnInvoice(pub String);

/// Why a signature does not check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The account is not a compressed secp256k1 public key in hex (66 characters).
    #[error("the account is not a 66-hex-character compressed public key")]
    Account,
    /// The signature is not 128 hex characters of a compact ECDSA signature.
    #[error("the signature is not 128 hex characters")]
    Malformed,
    /// The signature is not the account's over the message (a high-S signature included).
    #[error("the signature is not the account's over this message")]
    Wrong,
    /// An account-read signature outside the allowed skew of now.
    #[error("the signed time is not within the allowed skew of now")]
    Stale,
}

/// Parses an account: 66 hex characters of a compressed public key (a `0x` prefix tolerated,
/// as the seed document writes keys).
///
/// # Errors
/// [`SignatureError::Account`] otherwise.
pub fn parse_account(text: &str) -> Result<PublicKey, SignatureError> {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    let bytes = <[u8; 33]>::from_hex(hex).map_err(|_| SignatureError::Account)?;
    PublicKey::from_slice(&bytes).map_err(|_| SignatureError::Account)
}

/// Checks that `signature` (hex, 64-byte compact, low-S; a `0x` prefix tolerated) is
/// `account`'s over `message`. Returns the account's key.
///
/// # Errors
/// [`SignatureError::Account`], [`SignatureError::Malformed`] or [`SignatureError::Wrong`].
pub fn verify(message: &str, signature: &str, account: &str) -> Result<PublicKey, SignatureError> {
    let key = parse_account(account)?;
    let hex = signature.strip_prefix("0x").unwrap_or(signature);
    let bytes = <[u8; 64]>::from_hex(hex).map_err(|_| SignatureError::Malformed)?;
    let signature = Signature::from_compact(&bytes).map_err(|_| SignatureError::Malformed)?;
    // libsecp256k1 refuses a high-S signature: one signature, one spelling.
    SECP.verify_ecdsa(&digest(message), &signature, &key)
        .map_err(|_| SignatureError::Wrong)?;
    Ok(key)
}

/// Checks an `X402-Account-Signature` value (`<unix seconds>.<signature>`) reading `account`
/// on `network` (as written in the request) at `now` (Unix seconds), within `skew_secs`.
///
/// # Errors
/// [`SignatureError::Malformed`] for another shape, [`SignatureError::Stale`] outside the
/// skew, the errors of [`verify`] otherwise.
pub fn verify_account_read(
    header: &str,
    network: &str,
    account: &str,
    now: u64,
    skew_secs: u64,
) -> Result<PublicKey, SignatureError> {
    let (unix, signature) = header
        .trim()
        .split_once('.')
        .ok_or(SignatureError::Malformed)?;
    let unix: u64 = crate::v1::types::msat_string::parse(unix).ok_or(SignatureError::Malformed)?;
    let key = verify(
        &account_read_message(network, account, unix),
        signature,
        account,
    )?;
    if unix.abs_diff(now) > skew_secs {
        return Err(SignatureError::Stale);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AccountKey {
        AccountKey::from_secret_hex(&"11".repeat(32)).expect("a valid key")
    }

    #[test]
    fn each_message_verifies_for_its_own_purpose_only() {
        let key = key();
        let account = key.account();
        let invoice = "lnbcrt10n1example";
        let authorization = key.sign(&authorization_message(invoice));
        assert!(verify(&authorization_message(invoice), &authorization, &account).is_ok());
        assert!(key.sign_authorization(invoice).is_err(), "not an invoice");
        assert!(
            key.sign_authorization(&withdrawal_message(invoice, 1))
                .is_err()
        );
        let withdrawal = key.sign_withdrawal(invoice, 10);
        assert!(verify(&withdrawal_message(invoice, 10), &withdrawal, &account).is_ok());
        assert_eq!(
            verify(&authorization_message(invoice), &withdrawal, &account),
            Err(SignatureError::Wrong)
        );
        assert_eq!(
            verify(&withdrawal_message(invoice, 11), &withdrawal, &account),
            Err(SignatureError::Wrong)
        );
    }

    #[test]
    fn a_high_s_twin_is_refused() {
        let key = key();
        let signature = key.sign("x");
        let mut parsed =
            Signature::from_compact(&<[u8; 64]>::from_hex(&signature).expect("hex")).expect("sig");
        let low = parsed.serialize_compact();
        // s' = n - s: the same signature, high-S.
        let order = bitcoin::secp256k1::constants::CURVE_ORDER;
        let mut high = low;
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let diff = i16::from(order[i]) - i16::from(low[32 + i]) - borrow;
            borrow = i16::from(diff < 0);
            high[32 + i] = u8::try_from(diff.rem_euclid(256)).expect("a byte");
        }
        parsed.normalize_s();
        assert_eq!(parsed.serialize_compact(), low);
        assert_eq!(
            verify("x", &high.to_lower_hex_string(), &key.account()),
            Err(SignatureError::Wrong)
        );
    }

    #[test]
    fn account_reads_expire_outside_the_skew() {
        let key = key();
        let header = key.account_read_signature("lightning-regtest", 1_000);
        let account = key.account();
        assert!(verify_account_read(&header, "lightning-regtest", &account, 1_060, 60).is_ok());
        assert_eq!(
            verify_account_read(&header, "lightning-regtest", &account, 1_061, 60),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_account_read(&header, "lightning-testnet", &account, 1_000, 60),
            Err(SignatureError::Wrong)
        );
        assert_eq!(
            verify_account_read("nope", "lightning-regtest", &account, 1_000, 60),
            Err(SignatureError::Malformed)
        );
    }
}
