//! Nostr Wallet Connect (NIP-47): [`NwcWallet`] pays through a wallet service that listens on
//! Nostr relays, with the connection URI the service hands out:
//! `nostr+walletconnect://<wallet service key>?relay=wss://…&secret=<client key>`.
//!
//! A payment is one NIP-47 `pay_invoice` request (kind 23194, encrypted with NIP-04, signed with
//! the URI's secret) and its answer (kind 23195) from the wallet service; [`Wallet::track`] is a
//! `lookup_invoice` by payment hash. Built on rust-nostr's `nwc` crate (0.44), which connects to
//! the relays on first use and keeps the connections until the wallet is dropped.
//!
//! ```
//! use std::time::Duration;
//! use x402_lightning::client::wallet::NwcWallet;
//!
//! let uri = "nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4\
//!            ?relay=wss%3A%2F%2Frelay.example.com\
//!            &secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c";
//! let wallet = NwcWallet::parse(uri)?.with_timeout(Duration::from_secs(30));
//! // The connection secret never shows in logs.
//! assert!(!format!("{wallet:?}").contains("71a8c14c"));
//! // Then, on a tokio runtime: `wallet.pay(&invoice, max_fee_msat).await`.
//! # Ok::<(), x402_lightning::client::wallet::NwcUriError>(())
//! ```
//!
//! # What the answers mean
//!
//! - A `pay_invoice` result: its `preimage` must hash to the invoice's payment hash
//!   ([`WalletError::Garbage`] otherwise); `fees_paid` (msat) is the fee, 0 when the service
//!   leaves that optional field out.
//! - A NIP-47 error response is [`PaymentOutcome::Failed`] only when NIP-47 says the request was
//!   not carried out: `PAYMENT_FAILED`, `INSUFFICIENT_BALANCE`, `QUOTA_EXCEEDED`, `RATE_LIMITED`,
//!   `NOT_IMPLEMENTED`, `RESTRICTED`, `UNAUTHORIZED`, `UNSUPPORTED_ENCRYPTION`. `INTERNAL`,
//!   `OTHER` and codes NIP-47 does not list for `pay_invoice` say nothing about the payment:
//!   [`WalletError::Status`] (status 0, message `CODE: message`).
//! - **No answer within the timeout** is [`WalletError::Timeout`], not
//!   [`PaymentOutcome::InFlight`]: over NWC silence cannot be read. The request may never have
//!   reached the wallet service, or the service may be paying, have paid, or have refused and
//!   its answer been lost; `InFlight` would claim the wallet is still trying, which nothing here
//!   shows. The client treats both alike: it does not pay the invoice again, it tracks it.
//! - `max_fee_msat`: NIP-47's `pay_invoice` has no fee limit (nor does the `nwc` crate), so the
//!   wallet service's own limits (the connection's budget, its routing fee cap) apply. The
//!   wallet refuses nothing on that basis; a fee above `max_fee_msat` is still a payment (it is
//!   logged as a warning with the payment hash), since the money has left.
//!
//! # TLS
//!
//! `nwc` 0.44 reaches `wss://` relays through rustls with the `ring` provider compiled in, next
//! to the aws-lc-rs provider this crate's HTTPS uses; with two providers rustls cannot pick one
//! by itself. On first use the wallet installs aws-lc-rs as the process default unless the
//! application installed a provider already (`rustls::crypto::CryptoProvider::install_default`).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bitcoin::hex::{DisplayHex as _, FromHex as _};
use nwc::nostr::nips::nip47::{
    self, LookupInvoiceRequest, LookupInvoiceResponse, NostrWalletConnectURI, PayInvoiceRequest,
    TransactionState, TransactionType,
};
use nwc::nostr::{PublicKey, RelayUrl, SecretKey, Url};
use nwc::{NWC, NostrWalletConnectOptions};

use super::{PaymentOutcome, Wallet, WalletError, WalletFuture, check_preimage, millis};
use crate::lnbtc::invoice;

/// The URI scheme of a NIP-47 connection string.
const SCHEME: &str = "nostr+walletconnect";

/// `nwc`'s own deadline runs this much longer than the wallet's, so that the wallet's decides.
const INNER_SLACK: Duration = Duration::from_secs(1);

/// NIP-47 error codes that mean the request was not carried out: the payment did not happen.
const NOT_PAID: &[&str] = &[
    "PAYMENT_FAILED",
    "INSUFFICIENT_BALANCE",
    "QUOTA_EXCEEDED",
    "RATE_LIMITED",
    "NOT_IMPLEMENTED",
    "RESTRICTED",
    "UNAUTHORIZED",
    "UNSUPPORTED_ENCRYPTION",
];

/// A [`Wallet`] that pays through a Nostr Wallet Connect (NIP-47) wallet service.
///
/// Built from the service's connection URI with [`NwcWallet::parse`] (or `str::parse`); connects
/// to the URI's relays on the first call, on the caller's tokio runtime. `Debug` shows the
/// service's key and the relays, never the secret.
pub struct NwcWallet {
    uri: NostrWalletConnectURI,
    timeout: Duration,
    client: OnceLock<NWC>,
}

/// Why a Nostr Wallet Connect URI was refused. The messages never repeat the URI (it holds the
/// connection secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NwcUriError {
    /// Not a URI of the `nostr+walletconnect` scheme.
    #[error("not a Nostr Wallet Connect URI: it must start with `nostr+walletconnect://`")]
    Scheme,
    /// The wallet service's key (the part after `://`) is not a public key in 64 hex characters.
    #[error(
        "the wallet service's key after `nostr+walletconnect://` is not a public key in 64 hex \
         characters"
    )]
    WalletKey,
    /// No `relay=` parameter.
    #[error("no `relay=` parameter: the URI must name at least one relay")]
    NoRelay,
    /// A `relay=` parameter is not a `ws://` or `wss://` URL.
    #[error("relay parameter {position} is not a `ws://` or `wss://` URL")]
    Relay {
        /// Which `relay=` parameter, counting from 1.
        position: usize,
    },
    /// No `secret=` parameter.
    #[error("no `secret=` parameter: the URI must carry the connection secret")]
    NoSecret,
    /// The `secret=` parameter is not a secret key in 64 hex characters, or appears twice.
    #[error("the `secret=` parameter is not one secret key in 64 hex characters")]
    Secret,
}

impl NwcWallet {
    /// How long a call waits for the wallet service's answer unless configured: 60 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// A wallet for the connection URI `nostr+walletconnect://<wallet service key>?relay=…&secret=…`
    /// (one or more `relay`; a `lud16` or unknown parameters are ignored). Surrounding
    /// whitespace is ignored. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`NwcUriError`] saying which part is wrong, without repeating the URI.
    pub fn parse(uri: &str) -> Result<Self, NwcUriError> {
        let uri = uri.trim();
        let prefix = format!("{SCHEME}://");
        if !uri
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(&prefix))
        {
            return Err(NwcUriError::Scheme);
        }
        // The rest of the checks cannot fail on the scheme: a parse error is the key's fault.
        let url = Url::parse(uri).map_err(|_| NwcUriError::WalletKey)?;
        let public_key = url
            .host_str()
            .filter(|key| key.len() == 64)
            .and_then(|key| PublicKey::from_hex(key).ok())
            .ok_or(NwcUriError::WalletKey)?;

        let mut relays = Vec::new();
        let mut secret = None;
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "relay" => {
                    let position = relays.len() + 1;
                    let relay =
                        RelayUrl::parse(&value).map_err(|_| NwcUriError::Relay { position })?;
                    relays.push(relay);
                }
                "secret" => {
                    let key = Some(&*value)
                        .filter(|key| key.len() == 64)
                        .and_then(|key| SecretKey::from_hex(key).ok())
                        .ok_or(NwcUriError::Secret)?;
                    if secret.replace(key).is_some() {
                        return Err(NwcUriError::Secret);
                    }
                }
                _ => {}
            }
        }
        if relays.is_empty() {
            return Err(NwcUriError::NoRelay);
        }
        let secret = secret.ok_or(NwcUriError::NoSecret)?;

        Ok(Self {
            uri: NostrWalletConnectURI::new(public_key, relays, secret, None),
            timeout: Self::DEFAULT_TIMEOUT,
            client: OnceLock::new(),
        })
    }

    /// Waits at most `timeout` for each answer of the wallet service (default
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)); past it a call is [`WalletError::Timeout`].
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self {
            uri: self.uri,
            timeout,
            // A client built with the old deadline (if any) is dropped with its connections.
            client: OnceLock::new(),
        }
    }

    /// How long a call waits for the wallet service's answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `nwc` client, built (and its TLS provider settled) on first use.
    fn client(&self) -> &NWC {
        self.client.get_or_init(|| {
            install_crypto_provider();
            let options = NostrWalletConnectOptions::new().timeout(self.timeout + INNER_SLACK);
            NWC::with_opts(self.uri.clone(), options)
        })
    }

    /// Sends one request and waits for its answer: `Ok(Ok(result))`, `Ok(Err(..))` for a NIP-47
    /// error response, `Err` when there is no readable answer.
    async fn ask<T>(
        &self,
        request: impl Future<Output = Result<T, nwc::Error>>,
    ) -> Result<Result<T, ErrorResponse>, WalletError> {
        let started = Instant::now();
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(WalletError::Timeout(millis(self.timeout))),
            Ok(Ok(result)) => Ok(Ok(result)),
            Ok(Err(err)) => {
                read_error(err, started.elapsed() >= self.timeout, self.timeout).map(Err)
            }
        }
    }

    async fn pay_invoice(
        &self,
        invoice: &str,
        max_fee_msat: u64,
    ) -> Result<PaymentOutcome, WalletError> {
        let decoded = invoice::decode(invoice)
            .map_err(|err| WalletError::Refused(format!("not a BOLT11 invoice: {err}")))?;
        if decoded.amount_msat.is_none() {
            return Err(WalletError::Refused("the invoice names no amount".into()));
        }
        let payment_hash = decoded.payment_hash_hex();
        let request = PayInvoiceRequest::new(invoice);

        match self.ask(self.client().pay_invoice(request)).await? {
            Ok(result) => {
                let preimage = proof(&result.preimage, &decoded.payment_hash)?;
                let fee_msat = result.fees_paid.unwrap_or(0);
                if fee_msat > max_fee_msat {
                    tracing::warn!(
                        payment_hash,
                        fee_msat,
                        max_fee_msat,
                        "the NWC wallet service paid more routing fees than allowed"
                    );
                }
                tracing::debug!(payment_hash, fee_msat, "paid over NWC");
                Ok(PaymentOutcome::Paid { preimage, fee_msat })
            }
            Err(refusal) if refusal.means_not_paid() => {
                tracing::debug!(payment_hash, code = refusal.code, "NWC payment failed");
                Ok(PaymentOutcome::Failed {
                    reason: refusal.to_string(),
                })
            }
            Err(refusal) => Err(refusal.into_status()),
        }
    }

    async fn lookup(&self, payment_hash: &[u8; 32]) -> Result<Option<PaymentOutcome>, WalletError> {
        let hash_hex = payment_hash.to_lower_hex_string();
        let request = LookupInvoiceRequest {
            payment_hash: Some(hash_hex.clone()),
            invoice: None,
        };
        match self.ask(self.client().lookup_invoice(request)).await? {
            Ok(found) => lookup_outcome(&found, payment_hash, &hash_hex),
            // The wallet service knows no payment (nor invoice) with this hash.
            Err(refusal) if refusal.code == "NOT_FOUND" => Ok(None),
            Err(refusal) => Err(refusal.into_status()),
        }
    }
}

impl Wallet for NwcWallet {
    /// NIP-47 `pay_invoice`; see the [module docs](self) for what each answer becomes.
    fn pay<'a>(&'a self, invoice: &'a str, max_fee_msat: u64) -> WalletFuture<'a, PaymentOutcome> {
        Box::pin(self.pay_invoice(invoice, max_fee_msat))
    }

    /// NIP-47 `lookup_invoice` by payment hash:
    /// - a preimage that hashes to `payment_hash`: [`PaymentOutcome::Paid`] with `fees_paid`;
    /// - no preimage, state `failed`: [`PaymentOutcome::Failed`];
    /// - no preimage, state `pending` or `expired`, or no state and no `settled_at`:
    ///   [`PaymentOutcome::InFlight`] (the service has the payment and has not shown it settled);
    /// - `NOT_FOUND`, or a record of type `incoming` (an invoice the wallet issued, not a payment
    ///   it made): `None`;
    /// - settled without a preimage, a preimage that does not hash to `payment_hash`, or a record
    ///   of another payment hash: [`WalletError::Garbage`].
    fn track<'a>(&'a self, payment_hash: &'a [u8; 32]) -> WalletFuture<'a, Option<PaymentOutcome>> {
        Box::pin(self.lookup(payment_hash))
    }
}

impl FromStr for NwcWallet {
    type Err = NwcUriError;

    /// [`NwcWallet::parse`].
    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        Self::parse(uri)
    }
}

impl fmt::Debug for NwcWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let relays: Vec<&str> = self.uri.relays.iter().map(RelayUrl::as_str).collect();
        f.debug_struct("NwcWallet")
            .field("wallet_service", &self.uri.public_key.to_hex())
            .field("relays", &relays)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A NIP-47 error response: `{"code": "PAYMENT_FAILED", "message": "…"}`.
#[derive(Debug)]
struct ErrorResponse {
    code: String,
    message: String,
}

impl ErrorResponse {
    /// Whether NIP-47 says the request was not carried out, so nothing was paid.
    fn means_not_paid(&self) -> bool {
        NOT_PAID.contains(&self.code.as_str())
    }

    /// An answer that says nothing about the payment.
    fn into_status(self) -> WalletError {
        WalletError::Status {
            status: 0,
            message: self.to_string(),
        }
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Sorts an `nwc` error: a NIP-47 error response, or why there is no readable answer.
/// `timed_out` says whether the wallet's deadline had passed when the error came.
fn read_error(
    err: nwc::Error,
    timed_out: bool,
    timeout: Duration,
) -> Result<ErrorResponse, WalletError> {
    match err {
        nwc::Error::NIP47(err) => read_nip47_error(err),
        // The subscription for the answer ended without one: at the deadline, or because the
        // relay closed it or the connection dropped.
        nwc::Error::PrematureExit if timed_out => Err(WalletError::Timeout(millis(timeout))),
        nwc::Error::PrematureExit => Err(WalletError::Unreachable(
            "the relay ended the subscription before the wallet service answered".into(),
        )),
        nwc::Error::Timeout => Err(WalletError::Timeout(millis(timeout))),
        nwc::Error::Pool(err) => Err(WalletError::Unreachable(format!("relay: {err}"))),
        nwc::Error::Handler(message) => Err(WalletError::Unreachable(message)),
    }
}

fn read_nip47_error(err: nip47::Error) -> Result<ErrorResponse, WalletError> {
    match err {
        nip47::Error::ErrorCode(error) => Ok(ErrorResponse {
            code: code_name(error.code),
            message: error.message,
        }),
        // The decrypted response may hold a preimage: never put it in a message. A response
        // `nostr` cannot read may still be an error response with a code it does not know.
        nip47::Error::CantDeserializeResponse { response, .. } => {
            error_in(&response).ok_or_else(|| {
                WalletError::Garbage("the wallet service's answer is not a NIP-47 response".into())
            })
        }
        nip47::Error::UnexpectedResult | nip47::Error::UnknownMethod => Err(WalletError::Garbage(
            "the wallet service answered with the result of another method".into(),
        )),
        nip47::Error::NIP04(err) => Err(WalletError::Garbage(format!(
            "cannot decrypt the wallet service's answer (NIP-04): {err}"
        ))),
        nip47::Error::WalletAuthorMismatch
        | nip47::Error::InvalidEventKind
        | nip47::Error::InvalidEventId
        | nip47::Error::InvalidEventSig => Err(WalletError::Garbage(format!(
            "the answer is not a valid event of the wallet service: {err}"
        ))),
        // Building or signing the request (nothing was sent).
        err => Err(WalletError::Refused(format!(
            "cannot build the NIP-47 request: {err}"
        ))),
    }
}

/// The code of an error response that `nostr` could not parse (e.g. a code it does not list).
fn error_in(response: &str) -> Option<ErrorResponse> {
    let response: serde_json::Value = serde_json::from_str(response).ok()?;
    let error = response.get("error")?;
    let code = error.get("code")?.as_str()?;
    let message = error.get("message").and_then(serde_json::Value::as_str);
    Some(ErrorResponse {
        code: code.to_owned(),
        message: message.unwrap_or_default().to_owned(),
    })
}

/// The wire name of a NIP-47 error code (`PAYMENT_FAILED`).
fn code_name(code: nip47::ErrorCode) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{code:?}"),
    }
}

/// Decodes a preimage in hex and checks it against the payment hash.
fn proof(preimage_hex: &str, payment_hash: &[u8; 32]) -> Result<[u8; 32], WalletError> {
    let preimage = <[u8; 32]>::from_hex(preimage_hex)
        .map_err(|_| WalletError::Garbage("the preimage is not 32 bytes in hex".into()))?;
    check_preimage(&preimage, payment_hash)?;
    Ok(preimage)
}

/// What a `lookup_invoice` result says about our payment of `payment_hash`.
fn lookup_outcome(
    found: &LookupInvoiceResponse,
    payment_hash: &[u8; 32],
    hash_hex: &str,
) -> Result<Option<PaymentOutcome>, WalletError> {
    if !found.payment_hash.eq_ignore_ascii_case(hash_hex) {
        return Err(WalletError::Garbage(
            "the wallet service answered about another payment hash".into(),
        ));
    }
    if found.transaction_type == Some(TransactionType::Incoming) {
        return Ok(None);
    }
    if let Some(preimage) = &found.preimage {
        let preimage = proof(preimage, payment_hash)?;
        return Ok(Some(PaymentOutcome::Paid {
            preimage,
            fee_msat: found.fees_paid,
        }));
    }
    match found.state {
        Some(TransactionState::Failed) => Ok(Some(PaymentOutcome::Failed {
            reason: "the wallet service reports the payment failed".into(),
        })),
        Some(TransactionState::Settled) => Err(WalletError::Garbage(
            "the wallet service reports the payment settled but gives no preimage".into(),
        )),
        None if found.settled_at.is_some() => Err(WalletError::Garbage(
            "the wallet service reports the payment settled but gives no preimage".into(),
        )),
        Some(TransactionState::Pending | TransactionState::Expired) | None => {
            Ok(Some(PaymentOutcome::InFlight))
        }
    }
}

/// nwc 0.44's websocket compiles rustls' `ring` provider in next to this crate's aws-lc-rs; with
/// both, rustls cannot choose and a `wss://` connection would panic. Installs aws-lc-rs (what
/// reqwest uses here too) unless a process default exists.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error means another thread installed one first, which serves as well.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: &str) -> ErrorResponse {
        ErrorResponse {
            code: code.into(),
            message: "because".into(),
        }
    }

    #[test]
    fn error_codes_that_say_the_request_was_not_carried_out_mean_not_paid() {
        for code in NOT_PAID {
            assert!(refusal(code).means_not_paid(), "{code}");
        }
        for code in ["INTERNAL", "OTHER", "NOT_FOUND", "SOMETHING_NEW"] {
            assert!(!refusal(code).means_not_paid(), "{code}");
        }
    }

    #[test]
    fn code_names_are_the_wire_names() {
        assert_eq!(code_name(nip47::ErrorCode::PaymentFailed), "PAYMENT_FAILED");
        assert_eq!(
            code_name(nip47::ErrorCode::InsufficientBalance),
            "INSUFFICIENT_BALANCE"
        );
    }

    #[test]
    fn an_unparsed_response_yields_its_error_code_and_never_its_text() {
        let unknown_code = r#"{"result_type":"pay_invoice","error":{"code":"UNSUPPORTED_ENCRYPTION","message":"nip44 only"}}"#;
        let found = error_in(unknown_code).expect("an error response");
        assert_eq!(found.code, "UNSUPPORTED_ENCRYPTION");
        assert!(found.means_not_paid());

        let secret_bearing = nip47::Error::CantDeserializeResponse {
            response: r#"{"result_type":"pay_invoice","result":{"preimage":"ab"}}"#.into(),
            error: "missing field".into(),
        };
        let err = read_nip47_error(secret_bearing).expect_err("garbage");
        assert!(matches!(err, WalletError::Garbage(_)));
        assert!(!err.to_string().contains("preimage"), "{err}");
    }

    #[test]
    fn a_settled_lookup_without_a_preimage_is_garbage_and_a_pending_one_in_flight() {
        let hash = [7u8; 32];
        let hex = hash.to_lower_hex_string();
        let mut found: LookupInvoiceResponse = serde_json::from_value(serde_json::json!({
            "type": "outgoing",
            "state": "settled",
            "payment_hash": hex,
            "amount": 1000,
            "fees_paid": 0,
            "created_at": 1,
        }))
        .expect("a lookup result");
        assert!(matches!(
            lookup_outcome(&found, &hash, &hex),
            Err(WalletError::Garbage(_))
        ));
        found.state = Some(TransactionState::Pending);
        assert_eq!(
            lookup_outcome(&found, &hash, &hex).expect("an answer"),
            Some(PaymentOutcome::InFlight)
        );
        found.state = Some(TransactionState::Failed);
        assert!(matches!(
            lookup_outcome(&found, &hash, &hex).expect("an answer"),
            Some(PaymentOutcome::Failed { .. })
        ));
        found.transaction_type = Some(TransactionType::Incoming);
        assert_eq!(
            lookup_outcome(&found, &hash, &hex).expect("an answer"),
            None
        );
    }
}
