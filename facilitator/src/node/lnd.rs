//! LND's REST API as a [`LightningNode`]: `GET /v1/getinfo` for the node key and chain,
//! `POST /v1/invoices` (`AddInvoice`) to mint.
//!
//! Every call carries the macaroon in LND's `Grpc-Metadata-macaroon` header (an
//! `invoice.macaroon` is enough). LND's `tls.cert` is a self-signed CA certificate: give it as
//! [`LndConfig::tls_cert_pem`] and it is pinned, the only certificate trusted (byte for byte, in
//! place of host-name and chain checks; the handshake is still verified against it). Answers
//! are read under a 1 MiB cap, so a hostile node cannot exhaust memory.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
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

use super::{InvoiceRequest, LightningNode, NodeError, NodeFuture};

/// The header LND's REST gateway reads the hex macaroon from.
const MACAROON_HEADER: HeaderName = HeaderName::from_static("grpc-metadata-macaroon");

/// The largest answer read from the node; a longer one is garbage.
const MAX_BODY_BYTES: usize = 1 << 20;

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

    /// Reads the binary macaroon file (e.g. `invoice.macaroon`) and, if given, the PEM
    /// `tls.cert`.
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

/// An LND node reached over its REST API: mints invoices with `POST /v1/invoices`.
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
            let body = AddInvoice {
                value_msat: request.amount_msat.to_string(),
                description_hash: BASE64.encode(request.description_hash),
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
    description_hash: String,
    expiry: String,
}

/// `lnrpc.AddInvoiceResponse`, the fields used.
#[derive(Deserialize)]
struct AddInvoiceResponse {
    payment_request: String,
    #[serde(default)]
    r_hash: Option<String>,
}

/// LND's error body (`{"code": 2, "message": "…", "details": []}`).
#[derive(Deserialize)]
struct LndError {
    message: String,
}

/// The `message` of LND's error body, control characters replaced and truncated; else the
/// status's reason.
fn lnd_message(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<LndError>(body) {
        Ok(error) if !error.message.is_empty() => error
            .message
            .chars()
            .take(MAX_MESSAGE_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        _ => reason(status),
    }
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
