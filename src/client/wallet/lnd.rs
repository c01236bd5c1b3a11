//! [`LndWallet`]: pays through LND's REST API (LND 0.18/0.19), with LND's `tls.cert` pinned.
//!
//! | Call | REST | LND RPC | Macaroon permission |
//! |---|---|---|---|
//! | [`Wallet::pay`], [`LndWallet::send_payment`] | `POST /v2/router/send` | `routerrpc.SendPaymentV2` | `offchain:write` |
//! | [`Wallet::track`], [`LndWallet::track_payment`] | `GET /v2/router/track/{payment_hash}` | `routerrpc.TrackPaymentV2` | `offchain:read` |
//!
//! Every call carries the macaroon, hex, in LND's `Grpc-Metadata-macaroon` header (marked
//! sensitive, so HTTP tooling does not print it). `admin.macaroon` may pay; LND's
//! `invoice.macaroon` and `readonly.macaroon` may not (LND answers `permission denied`). A
//! client that only pays and tracks is best given a macaroon baked with exactly that:
//!
//! ```text
//! lncli bakemacaroon offchain:read offchain:write
//! ```
//!
//! LND's `tls.cert` is a self-signed CA certificate with IP SANs, which the usual checks refuse
//! as a server's certificate: give it as [`LndWalletConfig::tls_cert_pem`] and it is **pinned**,
//! the only certificate trusted, byte for byte (in place of host-name and chain checks; the
//! handshake is still verified against it). Redirects are never followed (one would carry the
//! macaroon elsewhere), each call has a timeout ([`LndWalletConfig::timeout`]), and answers are
//! read under a 1 MiB cap (a payment's whole update stream included).
//!
//! Shapes, as LND's REST gateway (grpc-gateway v2) writes them: int64 as decimal strings
//! (amounts in msat), `bytes` as URL-safe base64 in a path (`/v2/router/track/{payment_hash}`),
//! `lnrpc.Payment`'s `payment_hash` and `payment_preimage` as hex, errors as
//! `{"code", "message", "details"}` with the gRPC code mapped to an HTTP status (`NotFound`
//! 404, `AlreadyExists` 409, `Unknown` 500). The streaming calls answer newline-delimited
//! `{"result": Payment}` objects (status `IN_FLIGHT`, `SUCCEEDED` or `FAILED`), or
//! `{"error": Status}`, also as the whole body of an error status; with `no_inflight_updates`
//! LND sends nothing at all, not even the status line, until the payment is decided.
//!
//! Paying is never guessed: a `SUCCEEDED` preimage is checked against the invoice's payment
//! hash ([`WalletError::Garbage`] otherwise) and never logged, `FAILED` carries LND's
//! `failure_reason`, and a payment LND has not decided within
//! [`LndWalletConfig::payment_timeout`] is [`PaymentOutcome::InFlight`] (LND keeps paying; it
//! is not cancelled). Any [`WalletError`] but [`WalletError::Refused`] (LND's `invoice is already
//! paid` and `payment is in transition`, 409, included) says nothing about whether the payment
//! left: [`Wallet::track`] tells, and only its `None` (LND's `payment isn't initiated`) means LND
//! never started one.
//!
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//!
//! use x402_lightning::client::wallet::{LndWallet, LndWalletConfig, PaymentOutcome, Wallet as _};
//!
//! # async fn run(invoice: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = LndWalletConfig::from_files(
//!     "https://127.0.0.1:8080",
//!     Path::new("/home/alice/.lnd/data/chain/bitcoin/mainnet/admin.macaroon"),
//!     Some(Path::new("/home/alice/.lnd/tls.cert")),
//! )?;
//! config.payment_timeout = Duration::from_secs(30);
//! let wallet = LndWallet::new(config)?;
//!
//! match wallet.pay(invoice, 1_000).await? {
//!     PaymentOutcome::Paid { fee_msat, .. } => println!("paid, {fee_msat} msat in fees"),
//!     PaymentOutcome::InFlight => println!("in flight: track it, never pay it again"),
//!     PaymentOutcome::Failed { reason } => println!("not paid: {reason}"),
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE as BASE64_URL;
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{PaymentOutcome, Wallet, WalletError, WalletFuture, check_preimage, millis};
use crate::client::body::{ReadError, read_limited};

/// The header LND's REST gateway reads the hex macaroon from.
const MACAROON_HEADER: HeaderName = HeaderName::from_static("grpc-metadata-macaroon");

/// The largest answer read from the node; a longer one is garbage.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Added to a streaming call's wait for its HTTP timeout, so that the client's own deadline
/// never cuts a stream the caller still waits for.
const STREAM_MARGIN: Duration = Duration::from_secs(5);

/// LND's `ErrPaymentNotInitiated` (`TrackPaymentV2` of a hash it never paid).
const PAYMENT_NOT_FOUND: &str = "payment isn't initiated";

/// The longest node error message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 200;

/// How to reach an LND node's REST API, and how long a payment may take.
///
/// Build it with [`new`](Self::new) or [`from_files`](Self::from_files), then set the fields
/// whose defaults do not fit; [`LndWallet::new`] checks it.
#[derive(Clone)]
#[non_exhaustive]
pub struct LndWalletConfig {
    /// The REST base URL, `http` or `https`, e.g. `https://127.0.0.1:8080` (LND's `restlisten`).
    pub url: String,
    /// The macaroon as hex (LND's `*.macaroon` files are binary: see
    /// [`from_files`](Self::from_files)). Paying needs `offchain:write`, tracking
    /// `offchain:read`. Never printed by `Debug`.
    pub macaroon_hex: String,
    /// LND's `tls.cert` (PEM), pinned: the only certificate trusted; `None` trusts the system's
    /// roots (for LND behind a proxy with a public certificate).
    pub tls_cert_pem: Option<Vec<u8>>,
    /// How long one call may take, connecting and reading the answer included (a payment's
    /// update stream has [`payment_timeout`](Self::payment_timeout) instead).
    pub timeout: Duration,
    /// How long LND may try to pay (`SendPaymentV2`'s `timeout_seconds`, rounded up to whole
    /// seconds) and [`Wallet::pay`] waits for its outcome before answering
    /// [`PaymentOutcome::InFlight`]. Not zero.
    pub payment_timeout: Duration,
}

impl LndWalletConfig {
    /// The default [`timeout`](Self::timeout) of a call: 10 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// The default [`payment_timeout`](Self::payment_timeout): 60 s, as `lncli payinvoice`.
    pub const DEFAULT_PAYMENT_TIMEOUT: Duration = Duration::from_secs(60);

    /// A config for the node at `url` with the hex macaroon `macaroon_hex`, trusting the
    /// system's roots (set [`tls_cert_pem`](Self::tls_cert_pem) for LND's own certificate) and
    /// the default timeouts.
    pub fn new(url: impl Into<String>, macaroon_hex: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            macaroon_hex: macaroon_hex.into(),
            tls_cert_pem: None,
            timeout: Self::DEFAULT_TIMEOUT,
            payment_timeout: Self::DEFAULT_PAYMENT_TIMEOUT,
        }
    }

    /// A config for the node at `url` reading the binary macaroon file (`admin.macaroon`, or
    /// one baked with `offchain:read offchain:write`) and, if given, LND's PEM `tls.cert` to
    /// pin; the default timeouts.
    ///
    /// # Errors
    ///
    /// [`LndConfigError::ReadFile`] naming the file that cannot be read, or
    /// [`LndConfigError::Macaroon`] if the macaroon file is empty.
    pub fn from_files(
        url: impl Into<String>,
        macaroon_path: &Path,
        tls_cert_path: Option<&Path>,
    ) -> Result<Self, LndConfigError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| LndConfigError::ReadFile {
                path: path.to_owned(),
                source,
            })
        };
        let macaroon = read(macaroon_path)?;
        if macaroon.is_empty() {
            return Err(LndConfigError::Macaroon(format!(
                "the file {} is empty",
                macaroon_path.display()
            )));
        }
        let mut config = Self::new(url, macaroon.to_lower_hex_string());
        config.tls_cert_pem = tls_cert_path.map(read).transpose()?;
        Ok(config)
    }
}

impl fmt::Debug for LndWalletConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The macaroon spends the node's money: never in a log line.
        f.debug_struct("LndWalletConfig")
            .field("url", &self.url)
            .field("macaroon_hex", &"<redacted>")
            .field("tls_cert_pinned", &self.tls_cert_pem.is_some())
            .field("timeout", &self.timeout)
            .field("payment_timeout", &self.payment_timeout)
            .finish()
    }
}

/// An [`LndWalletConfig`] that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LndConfigError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The URL is not an `http` or `https` URL with a host (or has credentials, a query or a
    /// fragment).
    #[error("the LND URL is unusable: {0}")]
    Url(String),
    /// The macaroon is empty or not hex.
    #[error("the LND macaroon is unusable: {0}")]
    Macaroon(String),
    /// The TLS certificate holds no PEM certificate, or is given for a plain `http` URL.
    #[error("the LND TLS certificate is unusable: {0}")]
    TlsCert(String),
    /// The payment timeout is zero.
    #[error("the LND payment timeout is unusable: {0}")]
    PaymentTimeout(String),
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client for LND: {0}")]
    Client(String),
}

/// A [`Wallet`] paying through an LND node's REST API (see the [module docs](self) for the
/// calls, their macaroon permissions and the certificate pin).
///
/// Besides the [`Wallet`] calls it offers LND's payment calls with an explicit wait
/// ([`send_payment`](Self::send_payment), [`track_payment`](Self::track_payment)) and other
/// REST calls over the same connection ([`get_json`](Self::get_json),
/// [`post_json`](Self::post_json)): the facilitator service's LND node mints and cancels its
/// invoices with them. Cloning is cheap and shares the connection pool.
#[derive(Clone)]
pub struct LndWallet {
    client: Client,
    /// The base URL without a trailing `/`.
    base: String,
    macaroon: HeaderValue,
    timeout: Duration,
    payment_timeout: Duration,
}

impl LndWallet {
    /// Checks `config` and builds the HTTP client (pinning the certificate, if given); makes
    /// no request.
    ///
    /// # Errors
    ///
    /// [`LndConfigError`] if the URL is not `http(s)` with a host, the macaroon is not hex, the
    /// certificate is not PEM (or given for a plain `http` URL), the payment timeout is zero, or
    /// the client cannot be built.
    pub fn new(config: LndWalletConfig) -> Result<Self, LndConfigError> {
        let url = Url::parse(&config.url).map_err(|err| LndConfigError::Url(err.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(LndConfigError::Url(
                "expected http(s)://HOST[:PORT]".to_owned(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(LndConfigError::Url(
                "credentials, a query or a fragment are not allowed".to_owned(),
            ));
        }

        if config.macaroon_hex.is_empty() || Vec::<u8>::from_hex(&config.macaroon_hex).is_err() {
            return Err(LndConfigError::Macaroon("expected hex".to_owned()));
        }
        let mut macaroon = HeaderValue::from_str(&config.macaroon_hex)
            .map_err(|_| LndConfigError::Macaroon("expected hex".to_owned()))?;
        macaroon.set_sensitive(true);

        if config.payment_timeout.is_zero() {
            return Err(LndConfigError::PaymentTimeout(
                "zero: LND would not try at all".to_owned(),
            ));
        }

        let mut builder = Client::builder()
            .timeout(config.timeout)
            // A redirect would carry the macaroon elsewhere; LND never redirects.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &config.tls_cert_pem {
            if url.scheme() != "https" {
                return Err(LndConfigError::TlsCert(
                    "given for a plain http URL".to_owned(),
                ));
            }
            builder = builder.tls_backend_preconfigured(pinned_tls(pem)?);
        }
        let client = builder
            .build()
            .map_err(|err| LndConfigError::Client(error_chain(&err)))?;

        Ok(Self {
            client,
            base: url.as_str().trim_end_matches('/').to_owned(),
            macaroon,
            timeout: config.timeout,
            payment_timeout: config.payment_timeout,
        })
    }

    /// Pays `invoice` (BOLT11) with at most `max_fee_msat` of routing fees, letting LND try for
    /// `timeout_secs` seconds (`timeout_seconds`) and reading its update stream for at most
    /// `wait` (`no_inflight_updates`: LND sends only the final update): `POST /v2/router/send`.
    ///
    /// [`PaymentOutcome::Paid`] carries the preimage (checked against the invoice's payment
    /// hash) and LND's `fee_msat`; [`PaymentOutcome::Failed`] LND's `failure_reason` (e.g.
    /// `FAILURE_REASON_NO_ROUTE`); [`PaymentOutcome::InFlight`] means LND did not decide
    /// within `wait`, which includes a node that never answered (LND keeps paying:
    /// [`track_payment`](Self::track_payment) learns the rest).
    ///
    /// # Errors
    ///
    /// [`WalletError::Refused`] if `invoice` is not BOLT11 (no request is made);
    /// [`WalletError::Status`] for LND's refusals (409 `invoice is already paid`, `payment is
    /// in transition`, 500 for an invoice of another network, …); [`WalletError::Garbage`]
    /// for an answer LND does not document (a wrong preimage included);
    /// [`WalletError::Unreachable`] or [`WalletError::Timeout`] for transport failures. None
    /// of them says whether the payment left.
    pub async fn send_payment(
        &self,
        invoice: &str,
        max_fee_msat: u64,
        timeout_secs: u32,
        wait: Duration,
    ) -> Result<PaymentOutcome, WalletError> {
        let payment_hash = decode_invoice(invoice)?.payment_hash;
        self.send(invoice, &payment_hash, max_fee_msat, timeout_secs, wait)
            .await
    }

    /// The state of LND's payment of `payment_hash`: `GET /v2/router/track/{payment_hash}`
    /// (URL-safe base64). A zero `wait` asks for its state now (`no_inflight_updates=false`,
    /// LND's first update, within the call's [timeout](LndWalletConfig::timeout)); otherwise
    /// the update stream (`no_inflight_updates=true`) is read until the payment is decided or
    /// `wait` is over ([`PaymentOutcome::InFlight`] then).
    ///
    /// `None` only for LND's own `payment isn't initiated` (gRPC `NotFound`, 404): LND never
    /// started a payment of this hash. A 404 without that message (a proxy's, an unknown
    /// route) is an error.
    ///
    /// # Errors
    ///
    /// As [`send_payment`](Self::send_payment), [`WalletError::Refused`] aside.
    pub async fn track_payment(
        &self,
        payment_hash: &[u8; 32],
        wait: Duration,
    ) -> Result<Option<PaymentOutcome>, WalletError> {
        // URL-safe base64 is made of URL-safe characters: nothing to escape (a standard `/`
        // would split the path).
        let now = wait.is_zero();
        let url = format!(
            "{}/v2/router/track/{}?no_inflight_updates={}",
            self.base,
            BASE64_URL.encode(payment_hash),
            !now
        );
        let request = self.client.get(url);
        let updates = if now {
            self.read_updates(self.authorized(request), payment_hash, true)
                .await
        } else {
            self.payment_updates(request, payment_hash, wait).await
        };
        let outcome = match updates {
            Ok(outcome) => outcome.unwrap_or(PaymentOutcome::InFlight),
            Err(WalletError::Status { message, .. }) if message.contains(PAYMENT_NOT_FOUND) => {
                tracing::debug!(
                    payment_hash = %payment_hash.to_lower_hex_string(),
                    "LND track payment: never initiated"
                );
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        log_payment("LND track payment", payment_hash, &outcome);
        Ok(Some(outcome))
    }

    /// `GET {url}{path}` (`path` starts with `/`, e.g. `/v1/getinfo`) with the macaroon, under
    /// the call's timeout and the size cap: the 2xx answer's JSON.
    ///
    /// # Errors
    ///
    /// [`WalletError::Status`] with LND's `message` (control characters replaced, at most 200
    /// characters) for a non-2xx status, [`WalletError::Garbage`] for an answer that is not
    /// `T`'s JSON or is over 1 MiB, [`WalletError::Unreachable`] or [`WalletError::Timeout`]
    /// for transport failures.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, WalletError> {
        let url = format!("{}{path}", self.base);
        self.call(self.client.get(url)).await
    }

    /// `POST {url}{path}` (`path` starts with `/`, e.g. `/v1/invoices`) with `body` as JSON
    /// and the macaroon, under the call's timeout and the size cap: the 2xx answer's JSON.
    ///
    /// # Errors
    ///
    /// As [`get_json`](Self::get_json).
    pub async fn post_json<B, T>(&self, path: &str, body: &B) -> Result<T, WalletError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let url = format!("{}{path}", self.base);
        self.call(self.client.post(url).json(body)).await
    }

    /// `SendPaymentV2` of an invoice already decoded to `payment_hash`.
    async fn send(
        &self,
        invoice: &str,
        payment_hash: &[u8; 32],
        max_fee_msat: u64,
        timeout_secs: u32,
        wait: Duration,
    ) -> Result<PaymentOutcome, WalletError> {
        let body = SendPayment {
            payment_request: invoice,
            fee_limit_msat: max_fee_msat.to_string(),
            timeout_seconds: i32::try_from(timeout_secs).unwrap_or(i32::MAX),
            no_inflight_updates: true,
        };
        let url = format!("{}/v2/router/send", self.base);
        let outcome = self
            .payment_updates(self.client.post(url).json(&body), payment_hash, wait)
            .await?
            .unwrap_or(PaymentOutcome::InFlight);
        log_payment("LND send payment", payment_hash, &outcome);
        Ok(outcome)
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        request.header(MACAROON_HEADER, self.macaroon.clone())
    }

    /// Sends `request` with the macaroon and parses a 2xx JSON answer.
    async fn call<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, WalletError> {
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|err| self.transport_error(&err))?;
        let status = response.status();
        let body = self.read_capped(response).await;
        if !status.is_success() {
            return Err(WalletError::Status {
                status: status.as_u16(),
                message: body.map_or_else(
                    |_| reason(status),
                    |body| lnd_message(status, &body, &self.macaroon),
                ),
            });
        }
        serde_json::from_slice(&body?)
            .map_err(|err| WalletError::Garbage(format!("not the documented JSON: {err}")))
    }

    /// Reads the body, refusing more than [`MAX_BODY_BYTES`].
    async fn read_capped(&self, response: Response) -> Result<Vec<u8>, WalletError> {
        read_limited(response, MAX_BODY_BYTES)
            .await
            .map_err(|err| match err {
                ReadError::Transport(err) => self.transport_error(&err),
                ReadError::TooLarge(limit) => WalletError::Garbage(ReadError::too_large(limit)),
            })
    }

    /// Sends a streaming call (`SendPaymentV2`, `TrackPaymentV2`) and reads its updates until
    /// a final status; `None` when `wait` elapses first or the stream ends without one.
    async fn payment_updates(
        &self,
        request: RequestBuilder,
        payment_hash: &[u8; 32],
        wait: Duration,
    ) -> Result<Option<PaymentOutcome>, WalletError> {
        // The client's timeout is per call: a stream may legitimately stay open for `wait`.
        let request = self
            .authorized(request)
            .timeout(wait.saturating_add(STREAM_MARGIN));
        tokio::time::timeout(wait, self.read_updates(request, payment_hash, false))
            .await
            .unwrap_or(Ok(None))
    }

    /// Reads a stream of payment updates: until a final status, or, with `first_only`, until
    /// the first update whatever it says ([`PaymentOutcome::InFlight`] included).
    async fn read_updates(
        &self,
        request: RequestBuilder,
        payment_hash: &[u8; 32],
        first_only: bool,
    ) -> Result<Option<PaymentOutcome>, WalletError> {
        let mut response = request
            .send()
            .await
            .map_err(|err| self.transport_error(&err))?;
        let status = response.status();
        if !status.is_success() {
            let body = self.read_capped(response).await;
            return Err(WalletError::Status {
                status: status.as_u16(),
                message: body.map_or_else(
                    |_| reason(status),
                    |body| lnd_message(status, &body, &self.macaroon),
                ),
            });
        }
        let mut read = 0;
        let mut line = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_error(&err))?
        {
            read += chunk.len();
            if read > MAX_BODY_BYTES {
                return Err(WalletError::Garbage(format!(
                    "an update stream over {MAX_BODY_BYTES} bytes"
                )));
            }
            for piece in chunk.split_inclusive(|byte| *byte == b'\n') {
                line.extend_from_slice(piece);
                if line.ends_with(b"\n") {
                    match payment_update(&line, payment_hash)? {
                        Some(PaymentOutcome::InFlight) if !first_only => {}
                        Some(outcome) => return Ok(Some(outcome)),
                        None => {}
                    }
                    line.clear();
                }
            }
        }
        // The last update may lack its delimiter.
        match payment_update(&line, payment_hash)? {
            Some(PaymentOutcome::InFlight) if !first_only => Ok(None),
            outcome => Ok(outcome),
        }
    }

    fn transport_error(&self, err: &reqwest::Error) -> WalletError {
        if err.is_timeout() {
            WalletError::Timeout(millis(self.timeout))
        } else {
            WalletError::Unreachable(error_chain(err))
        }
    }
}

impl fmt::Debug for LndWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No macaroon: it spends the node's money.
        f.debug_struct("LndWallet")
            .field("url", &self.base)
            .field("timeout", &self.timeout)
            .field("payment_timeout", &self.payment_timeout)
            .finish_non_exhaustive()
    }
}

impl Wallet for LndWallet {
    /// [`send_payment`](LndWallet::send_payment) with LND trying for the
    /// [payment timeout](LndWalletConfig::payment_timeout) (rounded up to whole seconds) and
    /// the wallet waiting as long. A payment still undecided then is asked for once more
    /// ([`track_payment`](LndWallet::track_payment), its state now): LND's verdict if it came
    /// meanwhile, else [`PaymentOutcome::InFlight`]; when LND does not know the payment at all
    /// (it never answered the send), [`WalletError::Timeout`].
    ///
    /// [`WalletError::Refused`] before any request for text that is not BOLT11 or an invoice
    /// without an amount.
    fn pay<'a>(&'a self, invoice: &'a str, max_fee_msat: u64) -> WalletFuture<'a, PaymentOutcome> {
        Box::pin(async move {
            let decoded = decode_invoice(invoice)?;
            if decoded.amount_msat.is_none() {
                return Err(WalletError::Refused(
                    "an invoice without an amount".to_owned(),
                ));
            }
            let payment_hash = decoded.payment_hash;
            let timeout_secs = whole_seconds(self.payment_timeout);
            let outcome = self
                .send(
                    invoice,
                    &payment_hash,
                    max_fee_msat,
                    timeout_secs,
                    self.payment_timeout,
                )
                .await?;
            if outcome != PaymentOutcome::InFlight {
                return Ok(outcome);
            }
            // With `no_inflight_updates` an undecided payment and a node that never answered
            // look the same: LND's own state tells them apart.
            match self.track_payment(&payment_hash, Duration::ZERO).await? {
                Some(outcome) => Ok(outcome),
                None => Err(WalletError::Timeout(millis(self.payment_timeout))),
            }
        })
    }

    /// [`track_payment`](LndWallet::track_payment) with a zero wait: LND's state of the
    /// payment now.
    fn track<'a>(&'a self, payment_hash: &'a [u8; 32]) -> WalletFuture<'a, Option<PaymentOutcome>> {
        Box::pin(self.track_payment(payment_hash, Duration::ZERO))
    }
}

/// Decodes a BOLT11 invoice with the scheme's decoder (which takes invoices without feature
/// bits, as LND does).
fn decode_invoice(invoice: &str) -> Result<crate::lnbtc::invoice::DecodedInvoice, WalletError> {
    crate::lnbtc::invoice::decode(invoice)
        .map_err(|err| WalletError::Refused(format!("not a BOLT11 invoice: {err}")))
}

/// `duration` in whole seconds, rounded up, at least 1 (LND's `timeout_seconds`).
fn whole_seconds(duration: Duration) -> u32 {
    let secs = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
        .max(1);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Logs a payment's state: its hash and status, never its preimage.
fn log_payment(what: &str, payment_hash: &[u8; 32], outcome: &PaymentOutcome) {
    let payment_hash = payment_hash.to_lower_hex_string();
    match outcome {
        PaymentOutcome::InFlight => tracing::debug!(%payment_hash, "{what}: in flight"),
        PaymentOutcome::Paid { fee_msat, .. } => {
            tracing::debug!(%payment_hash, fee_msat, "{what}: succeeded");
        }
        PaymentOutcome::Failed { reason } => {
            tracing::debug!(%payment_hash, %reason, "{what}: failed");
        }
    }
}

/// `POST /v2/router/send` (`routerrpc.SendPaymentRequest`), the fields sent.
#[derive(Serialize)]
struct SendPayment<'a> {
    payment_request: &'a str,
    fee_limit_msat: String,
    timeout_seconds: i32,
    no_inflight_updates: bool,
}

/// One line of a streaming answer: `{"result": lnrpc.Payment}` or `{"error": rpc.Status}`.
#[derive(Deserialize)]
struct StreamLine {
    #[serde(default)]
    result: Option<Payment>,
    #[serde(default)]
    error: Option<RpcStatus>,
}

/// `lnrpc.Payment`, the fields used.
#[derive(Deserialize)]
struct Payment {
    /// Hex (a `string` field, not `bytes`).
    #[serde(default)]
    payment_hash: Option<String>,
    status: String,
    /// Hex (a `string` field, not `bytes`); all zeros until the payment succeeds.
    #[serde(default)]
    payment_preimage: Option<String>,
    #[serde(default)]
    fee_msat: Option<String>,
    #[serde(default)]
    failure_reason: Option<String>,
}

/// `google.rpc.Status`, as grpc-gateway writes it.
#[derive(Deserialize)]
struct RpcStatus {
    #[serde(default)]
    code: i32,
    #[serde(default)]
    message: String,
}

/// One line of a payment's update stream: its status, `None` for a blank line, the node's
/// error for an error line.
fn payment_update(
    line: &[u8],
    payment_hash: &[u8; 32],
) -> Result<Option<PaymentOutcome>, WalletError> {
    if line.trim_ascii().is_empty() {
        return Ok(None);
    }
    let garbage = |what: &str| WalletError::Garbage(format!("a payment update: {what}"));
    let line: StreamLine =
        serde_json::from_slice(line).map_err(|err| garbage(&format!("not JSON: {err}")))?;
    let payment = match (line.result, line.error) {
        (Some(payment), None) => payment,
        (None, Some(error)) => {
            return Err(WalletError::Status {
                status: http_status_of(error.code),
                message: clean_message(&error.message)
                    .unwrap_or_else(|| format!("gRPC code {}", error.code)),
            });
        }
        _ => return Err(garbage("neither a result nor an error")),
    };
    if let Some(hash) = payment
        .payment_hash
        .as_deref()
        .filter(|hash| !hash.is_empty())
        && <[u8; 32]>::from_hex(hash).ok() != Some(*payment_hash)
    {
        return Err(garbage("another payment's hash"));
    }
    match payment.status.as_str() {
        "SUCCEEDED" => {
            let preimage = payment
                .payment_preimage
                .as_deref()
                .and_then(|hex| <[u8; 32]>::from_hex(hex).ok())
                .ok_or_else(|| garbage("payment_preimage is not 64 hex characters"))?;
            check_preimage(&preimage, payment_hash)?;
            let fee_msat = payment
                .fee_msat
                .as_deref()
                .and_then(|fee| fee.parse().ok())
                .ok_or_else(|| garbage("fee_msat is not an unsigned int64 string"))?;
            Ok(Some(PaymentOutcome::Paid { preimage, fee_msat }))
        }
        "FAILED" => Ok(Some(PaymentOutcome::Failed {
            reason: payment
                .failure_reason
                .as_deref()
                .and_then(clean_message)
                .unwrap_or_else(|| "FAILURE_REASON_NONE".to_owned()),
        })),
        // Not decided yet (`UNKNOWN` is LND's deprecated name of the same).
        "IN_FLIGHT" | "INITIATED" | "UNKNOWN" => Ok(Some(PaymentOutcome::InFlight)),
        _ => Err(garbage("an unknown status")),
    }
}

/// The HTTP status grpc-gateway gives a gRPC code (`runtime.HTTPStatusFromCode`): an error
/// line inside a 200 stream is reported with the status it would have had first.
fn http_status_of(code: i32) -> u16 {
    match code {
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// LND's error body: `{"code": 2, "message": "…", "details": []}`, or
/// `{"error": {"code": 6, "message": "…"}}` from a streaming call.
#[derive(Deserialize)]
struct LndError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<RpcStatus>,
}

/// The `message` of LND's error body, control characters replaced and truncated; else the
/// status's reason.
fn lnd_message(status: StatusCode, body: &[u8], macaroon: &HeaderValue) -> String {
    let macaroon = macaroon.to_str().unwrap_or_default();
    serde_json::from_slice::<LndError>(body)
        .ok()
        .and_then(|error| error.message.or(error.error.map(|status| status.message)))
        // A node (or a proxy before it) that echoes the request never gets the macaroon into
        // an error message.
        .map(|message| {
            if macaroon.is_empty() {
                message
            } else {
                message.replace(macaroon, "<macaroon>")
            }
        })
        .as_deref()
        .and_then(clean_message)
        .unwrap_or_else(|| reason(status))
}

/// A node's message, control characters replaced and truncated; `None` if empty.
fn clean_message(message: &str) -> Option<String> {
    (!message.is_empty()).then(|| {
        message
            .chars()
            .take(MAX_MESSAGE_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    })
}

fn reason(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("no message").to_owned()
}

/// An error and its sources on one line (a TLS failure's cause is a few sources down).
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A TLS client config that trusts exactly the certificate in `pem`.
fn pinned_tls(pem: &[u8]) -> Result<rustls::ClientConfig, LndConfigError> {
    let not_pem = |detail: String| LndConfigError::TlsCert(detail);
    let cert = CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or_else(|| not_pem("no PEM certificate".to_owned()))?
        .map_err(|err| not_pem(err.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = PinnedCert {
        cert,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| LndConfigError::Client(err.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Trusts one certificate, byte for byte: LND's `tls.cert` is a self-signed CA certificate,
/// which webpki refuses as a server's (`CaUsedAsEndEntity`) even as the only root. The pin
/// stands for the host name; the handshake signature is still verified against it.
#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::{Hash as _, sha256};

    use super::*;

    const PREIMAGE: [u8; 32] = [7; 32];

    fn hash() -> [u8; 32] {
        sha256::Hash::hash(&PREIMAGE).to_byte_array()
    }

    fn line(status: &str, preimage: &[u8; 32], fee_msat: &str) -> String {
        serde_json::json!({"result": {
            "payment_hash": hash().to_lower_hex_string(),
            "status": status,
            "payment_preimage": preimage.to_lower_hex_string(),
            "fee_msat": fee_msat,
            "failure_reason": "FAILURE_REASON_NONE",
        }})
        .to_string()
    }

    #[test]
    fn a_succeeded_update_is_paid_with_its_preimage_and_fee() {
        let outcome = payment_update(line("SUCCEEDED", &PREIMAGE, "42").as_bytes(), &hash());

        assert_eq!(
            outcome.expect("an update"),
            Some(PaymentOutcome::Paid {
                preimage: PREIMAGE,
                fee_msat: 42
            })
        );
    }

    #[test]
    fn a_succeeded_update_with_a_wrong_preimage_is_garbage() {
        let outcome = payment_update(line("SUCCEEDED", &[8; 32], "42").as_bytes(), &hash());

        assert!(
            matches!(outcome, Err(WalletError::Garbage(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_blank_line_is_no_update_and_an_unknown_status_is_garbage() {
        assert!(matches!(payment_update(b" \r\n", &hash()), Ok(None)));
        let outcome = payment_update(line("PAID", &PREIMAGE, "1").as_bytes(), &hash());
        assert!(
            matches!(outcome, Err(WalletError::Garbage(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn an_error_line_is_the_status_of_its_grpc_code() {
        let error = br#"{"error": {"code": 6, "message": "invoice is already paid"}}"#;

        let outcome = payment_update(error, &hash());

        assert!(
            matches!(&outcome, Err(WalletError::Status { status: 409, message }) if message == "invoice is already paid"),
            "{outcome:?}"
        );
    }

    #[test]
    fn lnds_timeout_is_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
        assert_eq!(whole_seconds(Duration::MAX), u32::MAX);
    }

    #[test]
    fn debug_output_redacts_the_macaroon() {
        let config = LndWalletConfig::new("https://127.0.0.1:8080", "0201036c6e64");
        let wallet = LndWallet::new(config.clone()).expect("a valid config");

        for text in [
            format!("{config:?}"),
            format!("{config:#?}"),
            format!("{wallet:?}"),
            format!("{wallet:#?}"),
        ] {
            assert!(!text.contains("0201036c6e64"), "{text}");
            assert!(text.contains("https://127.0.0.1:8080"), "{text}");
        }
    }

    #[test]
    fn a_zero_payment_timeout_is_refused() {
        let mut config = LndWalletConfig::new("https://127.0.0.1:8080", "0201036c6e64");
        config.payment_timeout = Duration::ZERO;

        assert!(matches!(
            LndWallet::new(config),
            Err(LndConfigError::PaymentTimeout(_))
        ));
    }
}
