//! secp256k1 keys of the mock's actors: the facilitator's node and the clients' wallets.

use std::sync::LazyLock;

use bitcoin::hex::{DisplayHex as _, FromHex as _};
use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};
use rand::thread_rng;

/// One signing context for the whole mock: creating one is not free.
pub(crate) static SECP: LazyLock<Secp256k1<All>> = LazyLock::new(Secp256k1::new);

/// A secret key given as hex that is not a valid secp256k1 secret key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a 64-hex-character secp256k1 secret key")]
pub struct InvalidSecretKey;

/// A secret key and its public key, which `Debug` shows alone.
#[derive(Clone)]
pub(crate) struct KeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public_hex())
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    pub(crate) fn random() -> Self {
        Self::from_secret(SecretKey::new(&mut thread_rng()))
    }

    pub(crate) fn from_secret(secret: SecretKey) -> Self {
        let public = PublicKey::from_secret_key(&SECP, &secret);
        Self { secret, public }
    }

    /// Parses a 32-byte secret key from 64 hex characters.
    pub(crate) fn from_secret_hex(hex: &str) -> Result<Self, InvalidSecretKey> {
        let bytes = <[u8; 32]>::from_hex(hex).map_err(|_| InvalidSecretKey)?;
        SecretKey::from_slice(&bytes)
            .map(Self::from_secret)
            .map_err(|_| InvalidSecretKey)
    }

    pub(crate) fn secret(&self) -> &SecretKey {
        &self.secret
    }

    pub(crate) fn public(&self) -> PublicKey {
        self.public
    }

    /// The compressed public key as 66 hex characters.
    pub(crate) fn public_hex(&self) -> String {
        self.public.serialize().to_lower_hex_string()
    }

    /// The secret key as 64 hex characters.
    pub(crate) fn secret_hex(&self) -> String {
        self.secret.secret_bytes().to_lower_hex_string()
    }
}
