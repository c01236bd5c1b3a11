//! An LND REST simulator: `GET /v1/getinfo` and `POST /v1/invoices` in the shapes LND documents
//! (int64 as decimal strings, bytes as standard base64, errors as `{"code", "message",
//! "details"}`), over real HTTPS with a self-signed certificate, minting real signed invoices
//! with a [`MockNode`]. It records every request and can be told to misbehave.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bitcoin::hashes::Hash as _;
use bitcoin::secp256k1::PublicKey;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use x402_lightning::Network;
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning_facilitator::node::LndConfig;

/// The macaroon every simulator accepts (binary, as LND's files are), and its hex.
pub const MACAROON: &[u8] = b"\x02\x01\x03lnd\x02\xf8\x01\x03\n\x10invoice-macaroon-for-tests";

/// A request the simulator received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How the simulator misbehaves on one path.
#[derive(Clone, Debug)]
pub enum Fault {
    /// LND's error JSON with this status and message.
    Error { status: u16, message: String },
    /// This status and raw body.
    Raw { status: u16, body: Bytes },
    /// Never answer.
    Hang,
}

/// The certificate shapes the simulator can serve.
#[derive(Clone, Copy, Debug)]
pub enum CertShape {
    /// An end-entity certificate for `localhost` and `127.0.0.1`.
    Leaf,
    /// What LND's `cert.GenCertPair` writes: self-signed, `IsCA: true`, key usage
    /// `keyCertSign | digitalSignature | keyEncipherment`, for `localhost` and `127.0.0.1`.
    LndSelfSignedCa,
}

/// A self-signed certificate and its key, as LND keeps `tls.cert` and `tls.key`.
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TlsIdentity {
    pub fn generate(shape: CertShape) -> Self {
        let key = KeyPair::generate().expect("generate a P-256 key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("certificate names");
        if let CertShape::LndSelfSignedCa = shape {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyEncipherment,
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
            ];
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        }
        let cert = params.self_signed(&key).expect("self-sign");
        Self {
            cert_pem: cert.pem().into_bytes(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)
            .expect("server certificate");
        TlsAcceptor::from(Arc::new(config))
    }
}

struct SimState {
    node: MockNode,
    /// LND's name of the chain network: `mainnet`, `testnet`, `signet`, `regtest`.
    lnd_network: &'static str,
    network: Network,
    macaroon_hex: String,
    requests: Mutex<Vec<Recorded>>,
    faults: Mutex<HashMap<String, Fault>>,
    minted: Mutex<Vec<String>>,
}

/// A running simulator; the server stops when it is dropped.
pub struct LndSim {
    pub addr: SocketAddr,
    pub tls: TlsIdentity,
    state: Arc<SimState>,
    server: JoinHandle<()>,
}

impl Drop for LndSim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LndSim {
    /// A simulator on `network` with a leaf certificate.
    pub async fn start(network: Network) -> Self {
        Self::start_with(network, CertShape::Leaf).await
    }

    pub async fn start_with(network: Network, shape: CertShape) -> Self {
        let lnd_network = match network {
            Network::Bitcoin => "mainnet",
            Network::Testnet => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        };
        let state = Arc::new(SimState {
            node: MockNode::random(),
            lnd_network,
            network,
            macaroon_hex: hex(MACAROON),
            requests: Mutex::default(),
            faults: Mutex::default(),
            minted: Mutex::default(),
        });
        let tls = TlsIdentity::generate(shape);
        let acceptor = tls.acceptor();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here, before any handler.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        Self {
            addr,
            tls,
            state,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// A config that reaches this simulator: its URL, certificate and macaroon; 5 s timeout.
    pub fn config(&self) -> LndConfig {
        LndConfig {
            url: self.url(),
            macaroon_hex: self.state.macaroon_hex.clone(),
            tls_cert_pem: Some(self.tls.cert_pem.clone()),
            timeout: Duration::from_secs(5),
        }
    }

    pub fn macaroon_hex(&self) -> &str {
        &self.state.macaroon_hex
    }

    pub fn node_id(&self) -> PublicKey {
        self.state.node.node_id()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|request| request.path == path)
            .collect()
    }

    /// The invoices minted so far.
    pub fn minted(&self) -> Vec<String> {
        lock(&self.state.minted).clone()
    }

    /// Misbehave on `path` from now on.
    pub fn fail(&self, path: &str, fault: Fault) {
        lock(&self.state.faults).insert(path.to_owned(), fault);
    }

    /// Behave again.
    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// LND's REST error body (grpc-gateway's `google.rpc.Status`).
fn lnd_error(status: u16, code: u32, message: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("status");
    let body = json!({"code": code, "message": message, "details": []});
    (status, axum::Json(body)).into_response()
}

async fn handle(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    lock(&state.requests).push(Recorded {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });

    let fault = lock(&state.faults).get(&path).cloned();
    match fault {
        Some(Fault::Error { status, message }) => return lnd_error(status, 2, &message),
        Some(Fault::Raw { status, body }) => {
            return (StatusCode::from_u16(status).expect("status"), body).into_response();
        }
        Some(Fault::Hang) => std::future::pending::<()>().await,
        None => {}
    }

    // LND checks the macaroon before anything else; its errors are gRPC code 2 (Unknown), 500.
    match headers.get("grpc-metadata-macaroon") {
        None => return lnd_error(500, 2, "expected 1 macaroon, got 0"),
        Some(value) if value.as_bytes() != state.macaroon_hex.as_bytes() => {
            return lnd_error(
                500,
                2,
                "verification failed: signature mismatch after caveat verification",
            );
        }
        Some(_) => {}
    }

    match (method, path.as_str()) {
        (Method::GET, "/v1/getinfo") => axum::Json(json!({
            "version": "0.18.5-beta commit=v0.18.5-beta",
            "identity_pubkey": state.node.node_id().to_string(),
            "alias": "lnd-sim",
            "num_active_channels": 0,
            "num_peers": 0,
            "block_height": 800000,
            "synced_to_chain": true,
            "synced_to_graph": true,
            "chains": [{"chain": "bitcoin", "network": state.lnd_network}],
            "uris": [],
            "features": {},
        }))
        .into_response(),
        (Method::POST, "/v1/invoices") => add_invoice(&state, &body),
        _ => lnd_error(404, 5, "Not Found"),
    }
}

/// `AddInvoice`: reads `value_msat` and `expiry` (int64 as strings) and `description_hash`
/// (base64), mints, answers `lnrpc.AddInvoiceResponse`.
fn add_invoice(state: &SimState, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return lnd_error(400, 3, "unexpected end of JSON input");
    };
    let int64 = |field: &str| -> Option<u64> { request.get(field)?.as_str()?.parse().ok() };
    let (Some(amount_msat), Some(expiry)) = (int64("value_msat"), int64("expiry")) else {
        return lnd_error(400, 3, "value_msat and expiry must be int64 strings");
    };
    let hash = request
        .get("description_hash")
        .and_then(Value::as_str)
        .and_then(|text| BASE64.decode(text).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
    let Some(hash) = hash else {
        return lnd_error(500, 2, "description hash is 32 bytes");
    };
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let minted = state
        .node
        .mint(&InvoiceSpec {
            network: state.network,
            amount_msat,
            description: String::new(),
            description_hash: Some(hash),
            created_at,
            // LND's default when `expiry` is 0.
            expiry: Duration::from_secs(if expiry == 0 { 3600 } else { expiry }),
        })
        .expect("mint");
    let payment_request = minted.invoice.to_string();
    let add_index = {
        let mut minted_list = lock(&state.minted);
        minted_list.push(payment_request.clone());
        minted_list.len()
    };
    let payment_hash = bitcoin::hashes::sha256::Hash::hash(&minted.preimage);
    axum::Json(json!({
        "r_hash": BASE64.encode(payment_hash.as_byte_array()),
        "payment_request": payment_request,
        "add_index": add_index.to_string(),
        "payment_addr": BASE64.encode(minted.invoice.payment_secret().0),
    }))
    .into_response()
}
