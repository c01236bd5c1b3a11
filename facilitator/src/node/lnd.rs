//! LND's REST API (LND 0.18/0.19) as a [`LightningNode`].
//!
//! | Call | REST | LND RPC | Macaroon permission |
//! |---|---|---|---|
//! | [`node_id`](LightningNode::node_id) | `GET /v1/getinfo` | `GetInfo` | `info:read` |
//! | [`create_invoice`](LightningNode::create_invoice) | `POST /v1/invoices` | `AddInvoice` | `invoices:write` |
//! | [`lookup_invoice`](LightningNode::lookup_invoice) | `GET /v1/invoice/{r_hash_str}` | `LookupInvoice` | `invoices:read` |
//! | [`cancel_invoice`](LightningNode::cancel_invoice) | `POST /v2/invoices/cancel` | `invoicesrpc.CancelInvoice` | `invoices:write` |
//! | [`send_payment`](LightningNode::send_payment) | `POST /v2/router/send` | `routerrpc.SendPaymentV2` | `offchain:write` |
//! | [`track_payment`](LightningNode::track_payment) | `GET /v2/router/track/{payment_hash}` | `routerrpc.TrackPaymentV2` | `offchain:read` |
//!
//! Every call carries the macaroon in LND's `Grpc-Metadata-macaroon` header. LND's
//! `invoice.macaroon` holds `invoices:read`, `invoices:write`, `address:*` and `onchain:read`:
//! it can neither read `getinfo` (`info:read`) nor pay (`offchain:*`). A service that mints,
//! cancels and pays withdrawals needs `admin.macaroon` or, better, a macaroon baked with exactly
//! these permissions:
//!
//! ```text
//! lncli bakemacaroon invoices:read invoices:write offchain:read offchain:write info:read
//! ```
//!
//! LND's `tls.cert` is a self-signed CA certificate: give it as [`LndConfig::tls_cert_pem`] and
//! it is pinned, the only certificate trusted (byte for byte, in place of host-name and chain
//! checks; the handshake is still verified against it). Answers are read under a 1 MiB cap
//! (a payment's whole update stream included), so a hostile node cannot exhaust memory.
//!
//! Shapes, as LND's REST gateway (grpc-gateway v2) writes them: int64 as decimal strings,
//! `bytes` as base64 in bodies (standard alphabet sent) and URL-safe base64 in a path
//! (`/v2/router/track/{payment_hash}`; a standard `/` would split the path), errors as
//! `{"code", "message", "details"}` with the gRPC code mapped to an HTTP status (`NotFound` 404,
//! `AlreadyExists` 409, `Unknown` 500). The streaming calls (`SendPaymentV2`, `TrackPaymentV2`)
//! answer newline-delimited `{"result": Payment}` objects, or `{"error": Status}`, also as the
//! whole body of an error status; with `no_inflight_updates` LND sends nothing at all, not even
//! the status line, until the payment is decided.
//!
//! Paying is never guessed: [`send_payment`](LightningNode::send_payment) reports
//! `SUCCEEDED` (with a preimage checked against the invoice's payment hash) and `FAILED` as LND
//! says them, and [`PaymentStatus::InFlight`] when the wait ends first, which includes a node
//! that never answered; LND keeps paying after the stream is dropped (`cancelable` is not set).
//! Any error (LND's `invoice is already paid` and `payment is in transition`, 409, included) says
//! nothing about whether the payment left: [`track_payment`](LightningNode::track_payment)
//! tells, and only its `None` (LND's `payment isn't initiated`) means the node never started
//! one.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE as BASE64_URL};
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use bitcoin::secp256k1::PublicKey;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use x402_lightning::Network;

use super::{
    Cancelled, InvoiceDescription, InvoiceLookup, InvoiceRequest, InvoiceState, LightningNode,
    NodeError, NodeFuture, PaymentRequest, PaymentStatus,
};

/// The header LND's REST gateway reads the hex macaroon from.
const MACAROON_HEADER: HeaderName = HeaderName::from_static("grpc-metadata-macaroon");

/// The largest answer read from the node; a longer one is garbage.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Added to a streaming call's `wait` for its HTTP timeout, so that the client's own deadline
/// never cuts a stream the caller still waits for.
const STREAM_MARGIN: Duration = Duration::from_secs(5);

/// LND's `invoices.ErrInvoiceNotFound`.
const INVOICE_NOT_FOUND: &str = "unable to locate invoice";

/// LND's `invoices.ErrInvoiceAlreadySettled`.
const INVOICE_SETTLED: &str = "invoice already settled";

/// LND's `invoices.ErrInvoiceAlreadyCanceled`.
const INVOICE_CANCELED: &str = "invoice already canceled";

/// LND's `ErrPaymentNotInitiated` (`TrackPaymentV2` of a hash it never paid).
const PAYMENT_NOT_FOUND: &str = "payment isn't initiated";

/// The longest node error message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 200;

/// How to reach an LND node's REST API.
#[derive(Clone)]
pub struct LndConfig {
    /// The REST base URL, `http` or `https`, e.g. `https://127.0.0.1:8080`.
    pub url: String,
    /// The macaroon as hex (LND's `*.macaroon` files are binary: see
    /// [`from_files`](Self::from_files)). Never printed by `Debug`.
    pub macaroon_hex: String,
    /// LND's `tls.cert` (PEM), pinned: the only certificate trusted; `None` trusts the system's
    /// roots.
    pub tls_cert_pem: Option<Vec<u8>>,
    /// How long one call may take, connecting and reading the answer included.
    pub timeout: Duration,
}

impl LndConfig {
    /// The default [`timeout`](Self::timeout) of a call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Reads the binary macaroon file (`admin.macaroon` or one baked with the permissions of the
    /// [module docs](self)) and, if given, the PEM `tls.cert`.
    ///
    /// # Errors
    ///
    /// [`LndConfigError::ReadFile`] naming the file that cannot be read, or
    /// [`LndConfigError::Macaroon`] if the macaroon file is empty.
    pub fn from_files(
        url: impl Into<String>,
        macaroon_path: &Path,
        tls_cert_path: Option<&Path>,
        timeout: Duration,
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
        Ok(Self {
            url: url.into(),
            macaroon_hex: macaroon.to_lower_hex_string(),
            tls_cert_pem: tls_cert_path.map(read).transpose()?,
            timeout,
        })
    }
}

impl fmt::Debug for LndConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LndConfig")
            .field("url", &self.url)
            .field("macaroon_hex", &"<redacted>")
            .field(
                "tls_cert_pem",
                &self.tls_cert_pem.as_ref().map(|pem| pem.len()),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An [`LndConfig`] that cannot be used.
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
    /// The URL is not an `http` or `https` URL with a host.
    #[error("the LND URL is unusable: {0}")]
    Url(String),
    /// The macaroon is empty or not hex.
    #[error("the LND macaroon is unusable: {0}")]
    Macaroon(String),
    /// The TLS certificate holds no PEM certificate.
    #[error("the LND TLS certificate is unusable: {0}")]
    TlsCert(String),
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client for LND: {0}")]
    Client(String),
}

/// An LND node reached over its REST API: mints, looks up and cancels invoices, pays and tracks
/// payments (see the [module docs](self) for the calls and their macaroon permissions).
///
/// The node key and chain are read once from `GET /v1/getinfo` and kept.
pub struct LndNode {
    client: Client,
    /// The base URL without a trailing `/`.
    base: String,
    macaroon: HeaderValue,
    timeout: Duration,
    identity: OnceCell<Identity>,
}

/// What `getinfo` says about the node.
#[derive(Debug)]
struct Identity {
    node_id: PublicKey,
    /// LND's name of its bitcoin network: `mainnet`, `testnet`, `testnet4`, `signet`, `regtest`.
    network: String,
}

impl LndNode {
    /// Checks `config` and builds the HTTP client; makes no request.
    ///
    /// # Errors
    ///
    /// [`LndConfigError`] if the URL is not `http(s)` with a host, the macaroon is not hex, the
    /// certificate is not PEM (or given for a plain `http` URL), or the client cannot be built.
    pub fn new(config: LndConfig) -> Result<Self, LndConfigError> {
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
            identity: OnceCell::new(),
        })
    }

    /// The node key and chain, from `GET /v1/getinfo` on the first success.
    async fn identity(&self) -> Result<&Identity, NodeError> {
        self.identity
            .get_or_try_init(|| async {
                let info: GetInfo = self.call(self.client.get(self.endpoint("getinfo"))).await?;
                info.into_identity()
            })
            .await
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}/v1/{name}", self.base)
    }

    /// Sends `request` with the macaroon and parses a 2xx JSON answer.
    async fn call<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, NodeError> {
        let response = request
            .header(MACAROON_HEADER, self.macaroon.clone())
            .send()
            .await
            .map_err(|err| self.transport_error(&err))?;
        let status = response.status();
        let body = self.read_capped(response).await;
        if !status.is_success() {
            return Err(NodeError::Status {
                status: status.as_u16(),
                message: body.map_or_else(|_| reason(status), |body| lnd_message(status, &body)),
            });
        }
        serde_json::from_slice(&body?)
            .map_err(|err| NodeError::Garbage(format!("not the documented JSON: {err}")))
    }

    /// Reads the body, refusing more than [`MAX_BODY_BYTES`].
    async fn read_capped(&self, mut response: Response) -> Result<Vec<u8>, NodeError> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_error(&err))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(NodeError::Garbage(format!(
                    "an answer over {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Sends a streaming call (`SendPaymentV2`, `TrackPaymentV2`) and reads its updates until
    /// a final status; `None` when `wait` elapses first or the stream ends without one.
    async fn payment_updates(
        &self,
        request: RequestBuilder,
        payment_hash: &[u8; 32],
        wait: Duration,
    ) -> Result<Option<PaymentStatus>, NodeError> {
        // The client's timeout is per call: a stream may legitimately stay open for `wait`.
        let request = request
            .header(MACAROON_HEADER, self.macaroon.clone())
            .timeout(wait.saturating_add(STREAM_MARGIN));
        tokio::time::timeout(wait, self.read_updates(request, payment_hash, false))
            .await
            .unwrap_or(Ok(None))
    }

    /// Reads a stream of payment updates: until a final status, or, with `first_only`, until
    /// the first update whatever it says ([`PaymentStatus::InFlight`] included).
    async fn read_updates(
        &self,
        request: RequestBuilder,
        payment_hash: &[u8; 32],
        first_only: bool,
    ) -> Result<Option<PaymentStatus>, NodeError> {
        let mut response = request
            .send()
            .await
            .map_err(|err| self.transport_error(&err))?;
        let status = response.status();
        if !status.is_success() {
            let body = self.read_capped(response).await;
            return Err(NodeError::Status {
                status: status.as_u16(),
                message: body.map_or_else(|_| reason(status), |body| lnd_message(status, &body)),
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
                return Err(NodeError::Garbage(format!(
                    "an update stream over {MAX_BODY_BYTES} bytes"
                )));
            }
            for piece in chunk.split_inclusive(|byte| *byte == b'\n') {
                line.extend_from_slice(piece);
                if line.ends_with(b"\n") {
                    match payment_update(&line, payment_hash)? {
                        Some(PaymentStatus::InFlight) if !first_only => {}
                        Some(status) => return Ok(Some(status)),
                        None => {}
                    }
                    line.clear();
                }
            }
        }
        // The last update may lack its delimiter.
        match payment_update(&line, payment_hash)? {
            Some(PaymentStatus::InFlight) if !first_only => Ok(None),
            status => Ok(status),
        }
    }

    fn transport_error(&self, err: &reqwest::Error) -> NodeError {
        if err.is_timeout() {
            NodeError::Timeout(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX))
        } else {
            NodeError::Unreachable(error_chain(err))
        }
    }
}

impl fmt::Debug for LndNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LndNode")
            .field("url", &self.base)
            .field("timeout", &self.timeout)
            .field("identity", &self.identity.get())
            .finish_non_exhaustive()
    }
}

impl LightningNode for LndNode {
    /// `GET /v1/getinfo`'s `identity_pubkey`, fetched once.
    fn node_id(&self) -> NodeFuture<'_, PublicKey> {
        Box::pin(async move { self.identity().await.map(|identity| identity.node_id) })
    }

    /// `POST /v1/invoices` with `value_msat`, `description_hash` and `expiry`; returns LND's
    /// `payment_request`. [`NodeError::Refused`] if the node's chain is another network or the
    /// amount is 0 (LND would mint an invoice of any amount).
    fn create_invoice<'a>(&'a self, request: &'a InvoiceRequest) -> NodeFuture<'a, String> {
        Box::pin(async move {
            if request.amount_msat == 0 {
                return Err(NodeError::Refused("an invoice of 0 msat".to_owned()));
            }
            let identity = self.identity().await?;
            if !lnd_networks(request.network).contains(&identity.network.as_str()) {
                return Err(NodeError::Refused(format!(
                    "the node is on bitcoin {}, not {}",
                    identity.network,
                    request.network.as_str()
                )));
            }
            let (memo, description_hash) = match &request.description {
                InvoiceDescription::Hash(hash) => (None, Some(BASE64.encode(hash))),
                InvoiceDescription::Text(text) => (Some(text.clone()), None),
            };
            let body = AddInvoice {
                value_msat: request.amount_msat.to_string(),
                memo,
                description_hash,
                expiry: request.expiry_secs.to_string(),
            };
            let minted: AddInvoiceResponse = self
                .call(self.client.post(self.endpoint("invoices")).json(&body))
                .await?;
            if minted.payment_request.is_empty() {
                return Err(NodeError::Garbage("an empty payment_request".to_owned()));
            }
            let payment_hash = BASE64
                .decode(minted.r_hash.unwrap_or_default())
                .unwrap_or_default()
                .to_lower_hex_string();
            tracing::debug!(%payment_hash, amount_msat = request.amount_msat, "LND minted an invoice");
            Ok(minted.payment_request)
        })
    }

    /// `GET /v1/invoice/{r_hash_str}` (lowercase hex): `state`, `r_preimage` (checked against
    /// the payment hash), `amt_paid_msat`. LND's `unable to locate invoice` (404; 500 before
    /// LND 0.18) is `None`; any other 404 is an error (grpc-gateway answers an unknown route
    /// with 404 too).
    fn lookup_invoice<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
    ) -> NodeFuture<'a, Option<InvoiceLookup>> {
        Box::pin(async move {
            let url = format!(
                "{}/v1/invoice/{}",
                self.base,
                payment_hash.to_lower_hex_string()
            );
            match self.call::<LookupInvoice>(self.client.get(url)).await {
                Ok(invoice) => invoice.into_lookup(payment_hash).map(Some),
                Err(NodeError::Status { message, .. }) if message.contains(INVOICE_NOT_FOUND) => {
                    Ok(None)
                }
                Err(err) => Err(err),
            }
        })
    }

    /// `POST /v2/invoices/cancel` with `payment_hash` (base64). LND cancels a cancelled invoice
    /// again without complaint; `invoice already settled` is [`Cancelled::AlreadyPaid`], `unable
    /// to locate invoice` [`Cancelled::Unknown`] (both gRPC `Unknown`, HTTP 500).
    fn cancel_invoice<'a>(&'a self, payment_hash: &'a [u8; 32]) -> NodeFuture<'a, Cancelled> {
        Box::pin(async move {
            let body = CancelInvoice {
                payment_hash: BASE64.encode(payment_hash),
            };
            let url = format!("{}/v2/invoices/cancel", self.base);
            let answer = self
                .call::<CancelInvoiceResponse>(self.client.post(url).json(&body))
                .await;
            let cancelled = match answer {
                Ok(CancelInvoiceResponse {}) => Cancelled::Cancelled,
                Err(NodeError::Status { message, .. }) if message.contains(INVOICE_SETTLED) => {
                    Cancelled::AlreadyPaid
                }
                Err(NodeError::Status { message, .. }) if message.contains(INVOICE_NOT_FOUND) => {
                    Cancelled::Unknown
                }
                // LND before 0.15 refused to cancel twice.
                Err(NodeError::Status { message, .. }) if message.contains(INVOICE_CANCELED) => {
                    Cancelled::Cancelled
                }
                Err(err) => return Err(err),
            };
            tracing::debug!(
                payment_hash = %payment_hash.to_lower_hex_string(),
                ?cancelled,
                "LND cancel invoice"
            );
            Ok(cancelled)
        })
    }

    /// `POST /v2/router/send` with `payment_request`, `fee_limit_msat`, `timeout_seconds` and
    /// `no_inflight_updates`, reading the update stream for at most `wait`. The invoice is
    /// decoded first ([`NodeError::Refused`] if it is not BOLT11) so a `SUCCEEDED` preimage is
    /// checked against its payment hash. LND's refusals (409 `invoice is already paid`,
    /// `payment is in transition`, …) are [`NodeError::Status`]: track the payment then.
    fn send_payment<'a>(
        &'a self,
        request: PaymentRequest<'a>,
        wait: Duration,
    ) -> NodeFuture<'a, PaymentStatus> {
        Box::pin(async move {
            let invoice = x402_lightning::lnbtc::invoice::decode(request.invoice)
                .map_err(|err| NodeError::Refused(format!("not a BOLT11 invoice: {err}")))?;
            let payment_hash = invoice.payment_hash;
            let body = SendPayment {
                payment_request: request.invoice,
                fee_limit_msat: request.max_fee_msat.to_string(),
                timeout_seconds: i32::try_from(request.timeout_secs).unwrap_or(i32::MAX),
                no_inflight_updates: true,
            };
            let url = format!("{}/v2/router/send", self.base);
            let status = self
                .payment_updates(self.client.post(url).json(&body), &payment_hash, wait)
                .await?
                .unwrap_or(PaymentStatus::InFlight);
            log_payment("LND send payment", &payment_hash, &status);
            Ok(status)
        })
    }

    /// `GET /v2/router/track/{payment_hash}` (URL-safe base64) with `no_inflight_updates=true`,
    /// reading the update stream for at most `wait`. `None` only for LND's `payment isn't
    /// initiated` (gRPC `NotFound`, 404).
    fn track_payment<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
        wait: Duration,
    ) -> NodeFuture<'a, Option<PaymentStatus>> {
        Box::pin(async move {
            // URL-safe base64 is made of URL-safe characters: nothing to escape. A zero wait
            // asks for the state now: LND's first update (in flight included), within the
            // client's timeout; otherwise the stream is read until decided or `wait` is over.
            let now = wait.is_zero();
            let url = format!(
                "{}/v2/router/track/{}?no_inflight_updates={}",
                self.base,
                BASE64_URL.encode(payment_hash),
                !now
            );
            let request = self.client.get(url);
            let updates = if now {
                self.read_updates(
                    request.header(MACAROON_HEADER, self.macaroon.clone()),
                    payment_hash,
                    true,
                )
                .await
            } else {
                self.payment_updates(request, payment_hash, wait).await
            };
            let status = match updates {
                Ok(status) => status.unwrap_or(PaymentStatus::InFlight),
                Err(NodeError::Status { message, .. }) if message.contains(PAYMENT_NOT_FOUND) => {
                    tracing::debug!(
                        payment_hash = %payment_hash.to_lower_hex_string(),
                        "LND track payment: never initiated"
                    );
                    return Ok(None);
                }
                Err(err) => return Err(err),
            };
            log_payment("LND track payment", payment_hash, &status);
            Ok(Some(status))
        })
    }
}

/// Logs a payment's state: its hash and status, never its preimage.
fn log_payment(what: &str, payment_hash: &[u8; 32], status: &PaymentStatus) {
    let payment_hash = payment_hash.to_lower_hex_string();
    match status {
        PaymentStatus::InFlight => tracing::debug!(%payment_hash, "{what}: in flight"),
        PaymentStatus::Succeeded { fee_msat, .. } => {
            tracing::debug!(%payment_hash, fee_msat, "{what}: succeeded");
        }
        PaymentStatus::Failed { reason } => {
            tracing::debug!(%payment_hash, %reason, "{what}: failed");
        }
    }
}

/// LND's names of the bitcoin networks whose invoices are `network`'s.
fn lnd_networks(network: Network) -> &'static [&'static str] {
    match network {
        Network::Bitcoin => &["mainnet"],
        // testnet3 and testnet4 invoices are both `lntb…`.
        Network::Testnet => &["testnet", "testnet4"],
        Network::Signet => &["signet"],
        Network::Regtest => &["regtest"],
    }
}

/// `GET /v1/getinfo` (`lnrpc.GetInfoResponse`), the fields used.
#[derive(Deserialize)]
struct GetInfo {
    identity_pubkey: String,
    #[serde(default)]
    chains: Vec<Chain>,
}

#[derive(Deserialize)]
struct Chain {
    chain: String,
    network: String,
}

impl GetInfo {
    fn into_identity(self) -> Result<Identity, NodeError> {
        // `PublicKey::from_str` also takes 130-character uncompressed keys; LND sends 66.
        let node_id = Some(&self.identity_pubkey)
            .filter(|key| key.len() == 66)
            .and_then(|key| PublicKey::from_str(key).ok())
            .ok_or_else(|| NodeError::Garbage("identity_pubkey is not a public key".to_owned()))?;
        let network = self
            .chains
            .into_iter()
            .find(|chain| chain.chain == "bitcoin")
            .map(|chain| chain.network)
            .ok_or_else(|| NodeError::Garbage("getinfo names no bitcoin chain".to_owned()))?;
        Ok(Identity { node_id, network })
    }
}

/// `POST /v1/invoices` (`lnrpc.Invoice`), the fields sent: int64 as decimal strings, bytes as
/// standard base64, as LND's REST gateway documents.
#[derive(Serialize)]
struct AddInvoice {
    value_msat: String,
    /// BOLT11 `d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
    /// BOLT11 `h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    description_hash: Option<String>,
    expiry: String,
}

/// `lnrpc.AddInvoiceResponse`, the fields used.
#[derive(Deserialize)]
struct AddInvoiceResponse {
    payment_request: String,
    #[serde(default)]
    r_hash: Option<String>,
}

/// `GET /v1/invoice/{r_hash_str}` (`lnrpc.Invoice`), the fields used.
#[derive(Deserialize)]
struct LookupInvoice {
    #[serde(default)]
    r_hash: Option<String>,
    /// Empty for a hold invoice until it is settled.
    #[serde(default)]
    r_preimage: Option<String>,
    amt_paid_msat: String,
    state: String,
}

impl LookupInvoice {
    fn into_lookup(self, payment_hash: &[u8; 32]) -> Result<InvoiceLookup, NodeError> {
        let garbage = |what: &str| NodeError::Garbage(format!("LookupInvoice: {what}"));
        let state = match self.state.as_str() {
            "OPEN" => InvoiceState::Open,
            "ACCEPTED" => InvoiceState::Accepted,
            "SETTLED" => InvoiceState::Settled,
            "CANCELED" => InvoiceState::Canceled,
            _ => return Err(garbage("an unknown state")),
        };
        if let Some(r_hash) = self.r_hash.as_deref().filter(|text| !text.is_empty())
            && BASE64.decode(r_hash).ok().as_deref() != Some(&payment_hash[..])
        {
            return Err(garbage("r_hash is another invoice's"));
        }
        let preimage = match self.r_preimage.as_deref() {
            None | Some("") => None,
            Some(text) => {
                let preimage = BASE64
                    .decode(text)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| garbage("r_preimage is not 32 bytes of base64"))?;
                if sha256::Hash::hash(&preimage).to_byte_array() != *payment_hash {
                    return Err(garbage("r_preimage does not hash to the payment hash"));
                }
                Some(preimage)
            }
        };
        let amount_paid_msat = self
            .amt_paid_msat
            .parse()
            .map_err(|_| garbage("amt_paid_msat is not an unsigned int64 string"))?;
        Ok(InvoiceLookup {
            state,
            preimage,
            amount_paid_msat,
        })
    }
}

/// `POST /v2/invoices/cancel` (`invoicesrpc.CancelInvoiceMsg`).
#[derive(Serialize)]
struct CancelInvoice {
    payment_hash: String,
}

/// `invoicesrpc.CancelInvoiceResp`: an empty object.
#[derive(Deserialize)]
struct CancelInvoiceResponse {}

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

/// One line of a payment's update stream: its final status, `None` for an update that is not
/// final (or a blank line), the node's error for an error line.
fn payment_update(
    line: &[u8],
    payment_hash: &[u8; 32],
) -> Result<Option<PaymentStatus>, NodeError> {
    if line.trim_ascii().is_empty() {
        return Ok(None);
    }
    let garbage = |what: &str| NodeError::Garbage(format!("a payment update: {what}"));
    let line: StreamLine =
        serde_json::from_slice(line).map_err(|err| garbage(&format!("not JSON: {err}")))?;
    let payment = match (line.result, line.error) {
        (Some(payment), None) => payment,
        (None, Some(error)) => {
            return Err(NodeError::Status {
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
            if sha256::Hash::hash(&preimage).to_byte_array() != *payment_hash {
                return Err(garbage(
                    "payment_preimage does not hash to the payment hash",
                ));
            }
            let fee_msat = payment
                .fee_msat
                .as_deref()
                .and_then(|fee| fee.parse().ok())
                .ok_or_else(|| garbage("fee_msat is not an unsigned int64 string"))?;
            Ok(Some(PaymentStatus::Succeeded { preimage, fee_msat }))
        }
        "FAILED" => Ok(Some(PaymentStatus::Failed {
            reason: payment
                .failure_reason
                .as_deref()
                .and_then(clean_message)
                .unwrap_or_else(|| "FAILURE_REASON_NONE".to_owned()),
        })),
        // Not decided yet (`UNKNOWN` is LND's deprecated name of the same).
        "IN_FLIGHT" | "INITIATED" | "UNKNOWN" => Ok(Some(PaymentStatus::InFlight)),
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
fn lnd_message(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<LndError>(body)
        .ok()
        .and_then(|error| error.message.or(error.error.map(|status| status.message)))
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
