//! An LND REST simulator in the shapes LND 0.18/0.19 documents (int64 as decimal strings, bytes
//! as base64, errors as `{"code", "message", "details"}` with grpc-gateway's HTTP status of the
//! gRPC code), over real HTTPS with a self-signed certificate, minting real signed invoices with
//! a [`MockNode`]. It records every request and can be told to misbehave.
//!
//! | REST | LND RPC | What the simulator does |
//! |---|---|---|
//! | `GET /v1/getinfo` | `GetInfo` | its node key and chain |
//! | `POST /v1/invoices` | `AddInvoice` | mints (`memo` or `description_hash`), keeps it OPEN |
//! | `GET /v1/invoice/{r_hash_str}` | `LookupInvoice` | `lnrpc.Invoice`; 404 code 5 if unknown |
//! | `POST /v2/invoices/cancel` | `CancelInvoice` | OPEN → CANCELED; 500 code 2 if settled/unknown |
//! | `POST /v2/router/send` | `SendPaymentV2` | pays an [`external_invoice`](LndSim::external_invoice) |
//! | `GET /v2/router/track/{payment_hash}` | `TrackPaymentV2` | the payment's update stream |
//!
//! The two streaming calls answer newline-delimited `{"result": lnrpc.Payment}` lines. With
//! `no_inflight_updates` the simulator, like LND's gateway, sends nothing at all (not even the
//! status line) until the payment is decided; without it, an `IN_FLIGHT` line first and the
//! stream is kept open until [`resolve_payment`](LndSim::resolve_payment).
//!
//! An OPEN invoice past its expiry is CANCELED, as LND's expiry watcher does.
//!
//! The simulator runs on the runtime of the test that started it and keeps its state across
//! clients: a service process can be killed and restarted against it
//! ([`write_credentials`](LndSim::write_credentials), [`service_env`](LndSim::service_env)). A
//! test that blocks its thread meanwhile (`std::process`, `std::thread::sleep`) needs
//! `#[tokio::test(flavor = "multi_thread")]` so that the simulator keeps answering.

#![allow(dead_code)] // each test crate uses its own part of this module

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE as BASE64_URL};
use bitcoin::hashes::Hash as _;
use bitcoin::secp256k1::PublicKey;
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use x402_lightning::Network;
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning_facilitator::node::{InvoiceState, LndConfig, PaymentStatus};

/// The macaroon every simulator accepts (binary, as LND's files are), and its hex.
pub const MACAROON: &[u8] = b"\x02\x01\x03lnd\x02\xf8\x01\x03\n\x10invoice-macaroon-for-tests";

/// The permissions of LND's `invoice.macaroon` (`rpcserver.go`'s `invoicePermissions`), for
/// [`LndSim::grant_only`].
pub const INVOICE_MACAROON_PERMISSIONS: &[&str] = &[
    "invoices:read",
    "invoices:write",
    "address:read",
    "address:write",
    "onchain:read",
];

/// The permissions a facilitator that mints, cancels and pays needs.
pub const FACILITATOR_PERMISSIONS: &[&str] = &[
    "info:read",
    "invoices:read",
    "invoices:write",
    "offchain:read",
    "offchain:write",
];

/// LND's invoice expiry when `expiry` is 0.
const DEFAULT_EXPIRY_SECS: u64 = 3600;

/// A request the simulator received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    /// The query string without its `?` (empty when there is none).
    pub query: String,
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
    /// 200 and these chunks as a streamed body; then the stream ends, or stays open forever
    /// with `hold_open`.
    Stream { chunks: Vec<Bytes>, hold_open: bool },
    /// 200 and this chunk again and again, without end.
    Flood { chunk: Bytes },
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

/// What the next payment does (see [`LndSim::next_payment_outcome`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `SUCCEEDED`, having paid this routing fee; over the request's fee limit it is `FAILED`
    /// with `FAILURE_REASON_NO_ROUTE` instead, as LND never pays over the limit.
    Succeed { fee_msat: u64 },
    /// `FAILED` with this `failure_reason` (e.g. `FAILURE_REASON_NO_ROUTE`).
    Fail { reason: String },
    /// `IN_FLIGHT` until [`LndSim::resolve_payment`].
    Pending,
}

/// Files a service process reads to reach the simulator.
#[derive(Clone, Debug)]
pub struct LndFiles {
    /// The binary macaroon ([`MACAROON`]).
    pub macaroon: PathBuf,
    /// The PEM certificate.
    pub tls_cert: PathBuf,
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

/// An invoice the simulator's node minted.
struct Invoice {
    payment_request: String,
    preimage: [u8; 32],
    payment_addr: [u8; 32],
    value_msat: u64,
    memo: String,
    description_hash: Option<[u8; 32]>,
    creation_date: u64,
    expiry: u64,
    add_index: u64,
    state: InvoiceState,
    settle_date: u64,
    settle_index: u64,
    amt_paid_msat: u64,
}

impl Invoice {
    /// LND's expiry watcher cancels an open invoice once it has expired.
    fn expire(&mut self, now: u64) {
        if self.state == InvoiceState::Open && now > self.creation_date.saturating_add(self.expiry)
        {
            self.state = InvoiceState::Canceled;
        }
    }
}

/// A payment the simulator's node made.
struct Payment {
    payment_request: String,
    value_msat: u64,
    fee_limit_msat: u64,
    creation_time_ns: u128,
    payment_index: u64,
    status: PaymentStatus,
}

#[derive(Default)]
struct Books {
    /// By payment hash.
    invoices: HashMap<[u8; 32], Invoice>,
    settle_index: u64,
    /// The preimages of the external invoices, by payment hash: the only payable invoices.
    external: HashMap<[u8; 32], [u8; 32]>,
    /// By payment hash.
    payments: HashMap<[u8; 32], Payment>,
    payment_index: u64,
    next_outcomes: VecDeque<Outcome>,
    outcomes_by_hash: HashMap<[u8; 32], Outcome>,
}

struct SimState {
    node: MockNode,
    /// The node of the external invoices, the payees of the simulator's payments.
    external_node: MockNode,
    /// LND's name of the chain network: `mainnet`, `testnet`, `signet`, `regtest`.
    lnd_network: &'static str,
    network: Network,
    macaroon_hex: String,
    /// The permissions the macaroon holds; `None`: all of them (`admin.macaroon`).
    permissions: Mutex<Option<HashSet<String>>>,
    requests: Mutex<Vec<Recorded>>,
    faults: Mutex<HashMap<String, Fault>>,
    minted: Mutex<Vec<String>>,
    books: Mutex<Books>,
    /// Bumped whenever a payment changes, for the streams waiting on one.
    changed: watch::Sender<u64>,
}

impl SimState {
    fn bump(&self) {
        self.changed.send_modify(|version| *version += 1);
    }
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

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
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
            external_node: MockNode::random(),
            lnd_network,
            network,
            macaroon_hex: hex(MACAROON),
            permissions: Mutex::default(),
            requests: Mutex::default(),
            faults: Mutex::default(),
            minted: Mutex::default(),
            books: Mutex::default(),
            changed: watch::channel(0).0,
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

    /// Writes the binary macaroon (`admin.macaroon`) and the PEM certificate (`tls.cert`) into
    /// `dir`, as a service process reads them.
    pub fn write_credentials(&self, dir: &Path) -> LndFiles {
        let files = LndFiles {
            macaroon: dir.join("admin.macaroon"),
            tls_cert: dir.join("tls.cert"),
        };
        std::fs::write(&files.macaroon, MACAROON).expect("write the macaroon");
        std::fs::write(&files.tls_cert, &self.tls.cert_pem).expect("write the certificate");
        files
    }

    /// The environment of a service process using this simulator as its node:
    /// `X402_FACILITATOR_NODE=lnd`, `X402_FACILITATOR_LND_URL`, `X402_FACILITATOR_LND_MACAROON`
    /// and `X402_FACILITATOR_LND_TLS_CERT` (the files of [`write_credentials`](Self::write_credentials)).
    pub fn service_env(&self, files: &LndFiles) -> Vec<(&'static str, String)> {
        vec![
            ("X402_FACILITATOR_NODE", "lnd".to_owned()),
            ("X402_FACILITATOR_LND_URL", self.url()),
            (
                "X402_FACILITATOR_LND_MACAROON",
                files.macaroon.display().to_string(),
            ),
            (
                "X402_FACILITATOR_LND_TLS_CERT",
                files.tls_cert.display().to_string(),
            ),
        ]
    }

    /// From now on the macaroon holds only `permissions` (`entity:action`, e.g.
    /// [`INVOICE_MACAROON_PERMISSIONS`]): other calls get LND's `permission denied`.
    pub fn grant_only(&self, permissions: &[&str]) {
        *lock(&self.state.permissions) =
            Some(permissions.iter().map(|p| (*p).to_owned()).collect());
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

    /// The state of the simulator's invoice of `payment_hash` (an expired open one is
    /// cancelled); `None` if it never minted it.
    pub fn invoice_state(&self, payment_hash: &[u8; 32]) -> Option<InvoiceState> {
        let now = unix_now().as_secs();
        let mut books = lock(&self.state.books);
        let invoice = books.invoices.get_mut(payment_hash)?;
        invoice.expire(now);
        Some(invoice.state)
    }

    /// The preimage of the simulator's invoice of `payment_hash`.
    pub fn invoice_preimage(&self, payment_hash: &[u8; 32]) -> Option<[u8; 32]> {
        let books = lock(&self.state.books);
        books
            .invoices
            .get(payment_hash)
            .map(|invoice| invoice.preimage)
    }

    /// Someone paid the simulator's invoice of `payment_hash` over Lightning: it is SETTLED
    /// with its amount. Refused (LND's error text) unless it is open and unexpired.
    pub fn settle_invoice(&self, payment_hash: &[u8; 32]) -> Result<(), String> {
        let now = unix_now().as_secs();
        let mut guard = lock(&self.state.books);
        let books = &mut *guard;
        let invoice = books
            .invoices
            .get_mut(payment_hash)
            .ok_or("unable to locate invoice")?;
        invoice.expire(now);
        match invoice.state {
            InvoiceState::Open | InvoiceState::Accepted => {}
            InvoiceState::Settled => return Err("invoice already settled".to_owned()),
            InvoiceState::Canceled => return Err("invoice already canceled".to_owned()),
        }
        books.settle_index += 1;
        invoice.state = InvoiceState::Settled;
        invoice.settle_date = now;
        invoice.settle_index = books.settle_index;
        invoice.amt_paid_msat = invoice.value_msat;
        Ok(())
    }

    /// An invoice of another node (a withdrawal's destination) that the simulator can pay:
    /// `(invoice, payment_hash, preimage)`. Valid for an hour.
    pub fn external_invoice(
        &self,
        network: Network,
        amount_msat: u64,
    ) -> (String, [u8; 32], [u8; 32]) {
        let mut spec = InvoiceSpec::new(network, amount_msat);
        spec.description = "withdrawal".to_owned();
        let minted = self.state.external_node.mint(&spec).expect("mint");
        let payment_hash = *minted.invoice.payment_hash().as_byte_array();
        lock(&self.state.books)
            .external
            .insert(payment_hash, minted.preimage);
        (minted.invoice.to_string(), payment_hash, minted.preimage)
    }

    /// What the next payment (of any hash without its own outcome) does; queued in order.
    /// Without one, a payment succeeds with a fee of 1 msat per 1000 msat, rounded up.
    pub fn next_payment_outcome(&self, outcome: Outcome) {
        lock(&self.state.books).next_outcomes.push_back(outcome);
    }

    /// What the next payment of `payment_hash` does (before any queued outcome).
    pub fn payment_outcome(&self, payment_hash: [u8; 32], outcome: Outcome) {
        lock(&self.state.books)
            .outcomes_by_hash
            .insert(payment_hash, outcome);
    }

    /// Decides an in-flight payment: `SUCCEEDED` with the default fee (within its limit), or
    /// `FAILED` with `FAILURE_REASON_NO_ROUTE`. `false` if it is not in flight.
    pub fn resolve_payment(&self, payment_hash: &[u8; 32], succeed: bool) -> bool {
        let outcome = if succeed {
            let books = lock(&self.state.books);
            let Some(payment) = books.payments.get(payment_hash) else {
                return false;
            };
            Outcome::Succeed {
                fee_msat: default_fee(payment.value_msat).min(payment.fee_limit_msat),
            }
        } else {
            Outcome::Fail {
                reason: "FAILURE_REASON_NO_ROUTE".to_owned(),
            }
        };
        self.resolve_payment_with(payment_hash, outcome)
    }

    /// Decides an in-flight payment with `outcome` (`Pending` leaves it in flight). `false` if
    /// it is not in flight.
    pub fn resolve_payment_with(&self, payment_hash: &[u8; 32], outcome: Outcome) -> bool {
        {
            let mut books = lock(&self.state.books);
            let preimage = books.external.get(payment_hash).copied();
            let Some(payment) = books.payments.get_mut(payment_hash) else {
                return false;
            };
            if payment.status != PaymentStatus::InFlight {
                return false;
            }
            payment.status = decide(outcome, preimage, payment.fee_limit_msat);
        }
        self.state.bump();
        true
    }

    /// The simulator's payment of `payment_hash`, as LND would report it.
    pub fn payment_status(&self, payment_hash: &[u8; 32]) -> Option<PaymentStatus> {
        let books = lock(&self.state.books);
        books
            .payments
            .get(payment_hash)
            .map(|payment| payment.status.clone())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The path of `TrackPaymentV2` for `payment_hash` (URL-safe base64, as LND's gateway takes a
/// `bytes` path parameter), e.g. for [`LndSim::fail`].
pub fn track_path(payment_hash: &[u8; 32]) -> String {
    format!("/v2/router/track/{}", BASE64_URL.encode(payment_hash))
}

/// The simulator's routing fee: 1 msat per 1000 msat, rounded up.
pub fn default_fee(amount_msat: u64) -> u64 {
    amount_msat.div_ceil(1000)
}

/// The status an outcome gives a payment whose preimage is `preimage` (`None`: not an external
/// invoice, so no route reaches a node that knows it).
fn decide(outcome: Outcome, preimage: Option<[u8; 32]>, fee_limit_msat: u64) -> PaymentStatus {
    let Some(preimage) = preimage else {
        return PaymentStatus::Failed {
            reason: "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS".to_owned(),
        };
    };
    match outcome {
        Outcome::Succeed { fee_msat } if fee_msat > fee_limit_msat => PaymentStatus::Failed {
            reason: "FAILURE_REASON_NO_ROUTE".to_owned(),
        },
        Outcome::Succeed { fee_msat } => PaymentStatus::Succeeded { preimage, fee_msat },
        Outcome::Fail { reason } => PaymentStatus::Failed { reason },
        Outcome::Pending => PaymentStatus::InFlight,
    }
}

/// LND's REST error body (grpc-gateway's `google.rpc.Status`).
fn lnd_error(status: u16, code: u32, message: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("status");
    let body = json!({"code": code, "message": message, "details": []});
    (status, axum::Json(body)).into_response()
}

/// A streaming call's error before its first message: grpc-gateway's `{"error": Status}` line
/// with the HTTP status of the gRPC code.
fn stream_error(status: u16, code: u32, message: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("status");
    let line = json!({"error": {"code": code, "message": message, "details": []}});
    ndjson(status, Body::from(format!("{line}\n")))
}

fn ndjson(status: StatusCode, body: Body) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A body fed by a channel: a chunked stream that stays open while the sender lives.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// The permission LND requires for a route (`rpcserver.go`, `router_server.go`,
/// `invoices_server.go`).
fn permission_of(method: &Method, path: &str) -> Option<&'static str> {
    Some(match (method.as_str(), path) {
        ("GET", "/v1/getinfo") => "info:read",
        ("POST", "/v1/invoices") => "invoices:write",
        ("GET", p) if p.starts_with("/v1/invoice/") => "invoices:read",
        ("POST", "/v2/invoices/cancel") => "invoices:write",
        ("POST", "/v2/router/send") => "offchain:write",
        ("GET", p) if p.starts_with("/v2/router/track/") => "offchain:read",
        _ => return None,
    })
}

async fn handle(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    lock(&state.requests).push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
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
        Some(Fault::Stream { chunks, hold_open }) => {
            let (sender, receiver) = mpsc::channel(chunks.len().max(1));
            for chunk in chunks {
                sender.try_send(chunk).expect("room for every chunk");
            }
            if hold_open {
                tokio::spawn(async move { sender.closed().await });
            }
            return ndjson(StatusCode::OK, Body::new(ChannelBody(receiver)));
        }
        Some(Fault::Flood { chunk }) => {
            let (sender, receiver) = mpsc::channel(16);
            tokio::spawn(async move { while sender.send(chunk.clone()).await.is_ok() {} });
            return ndjson(StatusCode::OK, Body::new(ChannelBody(receiver)));
        }
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
    if let Some(needed) = permission_of(&method, &path)
        && let Some(granted) = lock(&state.permissions).as_ref()
        && !granted.contains(needed)
    {
        return lnd_error(500, 2, "permission denied");
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
        (Method::GET, p) if p.starts_with("/v1/invoice/") => {
            lookup_invoice(&state, &p["/v1/invoice/".len()..])
        }
        (Method::POST, "/v2/invoices/cancel") => cancel_invoice(&state, &body),
        (Method::POST, "/v2/router/send") => send_payment(state.clone(), &body).await,
        (Method::GET, p) if p.starts_with("/v2/router/track/") => {
            let encoded = p["/v2/router/track/".len()..].to_owned();
            track_payment(state.clone(), &encoded, &query).await
        }
        _ => lnd_error(404, 5, "Not Found"),
    }
}

/// `AddInvoice`: reads `value_msat` and `expiry` (int64 as strings), and `description_hash`
/// (base64) or `memo`; mints (the hash wins over the memo, as in LND), answers
/// `lnrpc.AddInvoiceResponse`.
fn add_invoice(state: &SimState, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return lnd_error(400, 3, "unexpected end of JSON input");
    };
    let int64 = |field: &str| -> Option<u64> { request.get(field)?.as_str()?.parse().ok() };
    let (Some(amount_msat), Some(expiry)) = (int64("value_msat"), int64("expiry")) else {
        return lnd_error(400, 3, "value_msat and expiry must be int64 strings");
    };
    let expiry = if expiry == 0 {
        DEFAULT_EXPIRY_SECS
    } else {
        expiry
    };
    let memo = match request.get("memo") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(memo)) => memo.clone(),
        Some(_) => return lnd_error(400, 3, "memo must be a string"),
    };
    if memo.len() > 1024 {
        let message = format!("memo too large: {} bytes (maxsize=1024)", memo.len());
        return lnd_error(500, 2, &message);
    }
    let description_hash = match request.get("description_hash") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let Some(bytes) = value.as_str().and_then(decode_base64) else {
                return lnd_error(400, 3, "description_hash: illegal base64 data");
            };
            match <[u8; 32]>::try_from(bytes.as_slice()) {
                Ok(hash) => Some(hash),
                Err(_) if bytes.is_empty() => None,
                Err(_) => {
                    let message = format!("description hash is {} bytes, must be 32", bytes.len());
                    return lnd_error(500, 2, &message);
                }
            }
        }
    };
    let created_at = unix_now();
    let minted = state
        .node
        .mint(&InvoiceSpec {
            network: state.network,
            amount_msat,
            description: memo.clone(),
            description_hash,
            created_at,
            expiry: Duration::from_secs(expiry),
        })
        .expect("mint");
    let payment_request = minted.invoice.to_string();
    let add_index = {
        let mut minted_list = lock(&state.minted);
        minted_list.push(payment_request.clone());
        minted_list.len() as u64
    };
    let payment_hash = *minted.invoice.payment_hash().as_byte_array();
    let payment_addr = minted.invoice.payment_secret().0;
    lock(&state.books).invoices.insert(
        payment_hash,
        Invoice {
            payment_request: payment_request.clone(),
            preimage: minted.preimage,
            payment_addr,
            value_msat: amount_msat,
            memo,
            description_hash,
            creation_date: created_at.as_secs(),
            expiry,
            add_index,
            state: InvoiceState::Open,
            settle_date: 0,
            settle_index: 0,
            amt_paid_msat: 0,
        },
    );
    axum::Json(json!({
        "r_hash": BASE64.encode(payment_hash),
        "payment_request": payment_request,
        "add_index": add_index.to_string(),
        "payment_addr": BASE64.encode(payment_addr),
    }))
    .into_response()
}

/// `bytes` in JSON or a path, as grpc-gateway reads them: standard or URL-safe base64, padded.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    BASE64
        .decode(text)
        .or_else(|_| BASE64_URL.decode(text))
        .ok()
}

/// `LookupInvoice`: `r_hash_str` is hex; answers `lnrpc.Invoice`.
fn lookup_invoice(state: &SimState, r_hash_str: &str) -> Response {
    let Some(bytes) = decode_hex(r_hash_str) else {
        return lnd_error(500, 2, "encoding/hex: invalid byte");
    };
    let Ok(payment_hash) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        let message = format!(
            "payment hash must be exactly 32 bytes, is instead {}",
            bytes.len()
        );
        return lnd_error(500, 2, &message);
    };
    let now = unix_now().as_secs();
    let mut books = lock(&state.books);
    let Some(invoice) = books.invoices.get_mut(&payment_hash) else {
        return lnd_error(404, 5, "unable to locate invoice");
    };
    invoice.expire(now);
    let state_name = match invoice.state {
        InvoiceState::Open => "OPEN",
        InvoiceState::Settled => "SETTLED",
        InvoiceState::Canceled => "CANCELED",
        InvoiceState::Accepted => "ACCEPTED",
    };
    axum::Json(json!({
        "memo": invoice.memo,
        "r_preimage": BASE64.encode(invoice.preimage),
        "r_hash": BASE64.encode(payment_hash),
        "value": (invoice.value_msat / 1000).to_string(),
        "value_msat": invoice.value_msat.to_string(),
        "settled": invoice.state == InvoiceState::Settled,
        "creation_date": invoice.creation_date.to_string(),
        "settle_date": invoice.settle_date.to_string(),
        "payment_request": invoice.payment_request,
        "description_hash": invoice.description_hash.map(|hash| BASE64.encode(hash)).unwrap_or_default(),
        "expiry": invoice.expiry.to_string(),
        "fallback_addr": "",
        "cltv_expiry": "18",
        "route_hints": [],
        "private": false,
        "add_index": invoice.add_index.to_string(),
        "settle_index": invoice.settle_index.to_string(),
        "amt_paid": (invoice.amt_paid_msat / 1000).to_string(),
        "amt_paid_sat": (invoice.amt_paid_msat / 1000).to_string(),
        "amt_paid_msat": invoice.amt_paid_msat.to_string(),
        "state": state_name,
        "htlcs": [],
        "features": {},
        "is_keysend": false,
        "payment_addr": BASE64.encode(invoice.payment_addr),
        "is_amp": false,
        "amp_invoice_state": {},
    }))
    .into_response()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `invoicesrpc.CancelInvoice`: `payment_hash` is base64. Cancelling a cancelled invoice
/// succeeds; a settled or unknown one is gRPC `Unknown` (500).
fn cancel_invoice(state: &SimState, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return lnd_error(400, 3, "unexpected end of JSON input");
    };
    let Some(bytes) = request
        .get("payment_hash")
        .and_then(Value::as_str)
        .and_then(decode_base64)
    else {
        return lnd_error(400, 3, "payment_hash: illegal base64 data");
    };
    let Ok(payment_hash) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        let message = format!("invalid hash length of {}, want 32", bytes.len());
        return lnd_error(500, 2, &message);
    };
    let now = unix_now().as_secs();
    let mut books = lock(&state.books);
    let Some(invoice) = books.invoices.get_mut(&payment_hash) else {
        return lnd_error(500, 2, "unable to locate invoice");
    };
    invoice.expire(now);
    match invoice.state {
        InvoiceState::Settled => lnd_error(500, 2, "invoice already settled"),
        _ => {
            invoice.state = InvoiceState::Canceled;
            axum::Json(json!({})).into_response()
        }
    }
}

/// `routerrpc.SendPaymentV2`: pays an external invoice (anything else fails with
/// `FAILURE_REASON_INCORRECT_PAYMENT_DETAILS`), as the outcomes set by the test say.
async fn send_payment(state: Arc<SimState>, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return stream_error(400, 3, "unexpected end of JSON input");
    };
    // protojson takes an int64 as a string or a number.
    let int = |field: &str| -> Result<u64, ()> {
        match request.get(field) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::String(text)) => text.parse().map_err(|_| ()),
            Some(Value::Number(number)) => number.as_u64().ok_or(()),
            Some(_) => Err(()),
        }
    };
    let (Ok(fee_limit_msat), Ok(_timeout_seconds)) =
        (int("fee_limit_msat"), int("timeout_seconds"))
    else {
        return stream_error(
            400,
            3,
            "fee_limit_msat and timeout_seconds must be integers",
        );
    };
    let no_inflight_updates = request
        .get("no_inflight_updates")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(payment_request) = request.get("payment_request").and_then(Value::as_str) else {
        return stream_error(500, 2, "payment_request is required");
    };
    let invoice = match x402_lightning::lnbtc::invoice::decode(payment_request) {
        Ok(invoice) => invoice,
        Err(err) => return stream_error(500, 2, &format!("invalid payment request: {err}")),
    };
    if Network::from_currency(&invoice.currency) != Some(state.network) {
        let message = format!(
            "invoice not for current active network '{}'",
            state.lnd_network
        );
        return stream_error(500, 2, &message);
    }
    let Some(value_msat) = invoice.amount_msat else {
        return stream_error(
            500,
            2,
            "amount must be specified when paying a zero amount invoice",
        );
    };
    let now = unix_now();
    if now.as_secs() > invoice.end() {
        return stream_error(500, 2, "invoice expired");
    }
    let payment_hash = invoice.payment_hash;
    {
        let mut guard = lock(&state.books);
        let books = &mut *guard;
        match books.payments.get(&payment_hash).map(|p| &p.status) {
            Some(PaymentStatus::Succeeded { .. }) => {
                return stream_error(409, 6, "invoice is already paid");
            }
            Some(PaymentStatus::InFlight) => {
                return stream_error(409, 6, "payment is in transition");
            }
            // A failed payment may be tried again.
            Some(PaymentStatus::Failed { .. }) | None => {}
        }
        let preimage = books.external.get(&payment_hash).copied();
        let outcome = if preimage.is_none() {
            Outcome::Pending // unused: an unknown invoice fails whatever was asked
        } else if let Some(outcome) = books.outcomes_by_hash.remove(&payment_hash) {
            outcome
        } else if let Some(outcome) = books.next_outcomes.pop_front() {
            outcome
        } else {
            Outcome::Succeed {
                fee_msat: default_fee(value_msat),
            }
        };
        books.payment_index += 1;
        let payment = Payment {
            payment_request: payment_request.to_owned(),
            value_msat,
            fee_limit_msat,
            creation_time_ns: now.as_nanos(),
            payment_index: books.payment_index,
            status: decide(outcome, preimage, fee_limit_msat),
        };
        books.payments.insert(payment_hash, payment);
    }
    state.bump();
    payment_stream(state, payment_hash, no_inflight_updates).await
}

/// `routerrpc.TrackPaymentV2`: the path's hash is base64 (URL-safe or standard, padded).
async fn track_payment(state: Arc<SimState>, encoded: &str, query: &str) -> Response {
    let Some(bytes) = decode_base64(encoded) else {
        return stream_error(
            400,
            3,
            "type mismatch, parameter: payment_hash, error: illegal base64 data",
        );
    };
    let Ok(payment_hash) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        let message = format!("invalid hash length of {}, want 32", bytes.len());
        return stream_error(500, 2, &message);
    };
    if !lock(&state.books).payments.contains_key(&payment_hash) {
        return stream_error(404, 5, "payment isn't initiated");
    }
    let no_inflight_updates = query
        .split('&')
        .any(|pair| pair == "no_inflight_updates=true" || pair == "no_inflight_updates=1");
    payment_stream(state, payment_hash, no_inflight_updates).await
}

/// The `{"result": lnrpc.Payment}` line of a payment.
fn payment_line(state: &SimState, payment_hash: &[u8; 32]) -> Option<(Bytes, bool)> {
    let books = lock(&state.books);
    let payment = books.payments.get(payment_hash)?;
    let (status, preimage, fee_msat, failure_reason) = match &payment.status {
        PaymentStatus::InFlight => ("IN_FLIGHT", [0; 32], 0, "FAILURE_REASON_NONE"),
        PaymentStatus::Succeeded { preimage, fee_msat } => {
            ("SUCCEEDED", *preimage, *fee_msat, "FAILURE_REASON_NONE")
        }
        PaymentStatus::Failed { reason } => ("FAILED", [0; 32], 0, reason.as_str()),
    };
    let result = json!({
        "payment_hash": hex(payment_hash),
        "value": (payment.value_msat / 1000).to_string(),
        "creation_date": (payment.creation_time_ns / 1_000_000_000).to_string(),
        "fee": (fee_msat / 1000).to_string(),
        "payment_preimage": hex(&preimage),
        "value_sat": (payment.value_msat / 1000).to_string(),
        "value_msat": payment.value_msat.to_string(),
        "payment_request": payment.payment_request,
        "status": status,
        "fee_sat": (fee_msat / 1000).to_string(),
        "fee_msat": fee_msat.to_string(),
        "creation_time_ns": payment.creation_time_ns.to_string(),
        "htlcs": [],
        "payment_index": payment.payment_index.to_string(),
        "failure_reason": failure_reason,
        "first_hop_custom_records": {},
    });
    let line = format!("{}\n", json!({ "result": result }));
    Some((Bytes::from(line), payment.status != PaymentStatus::InFlight))
}

/// A payment's update stream: with `no_inflight_updates`, nothing (no status line either)
/// until it is decided, then its final line; without, its current line at once and the final
/// one when it is decided.
async fn payment_stream(
    state: Arc<SimState>,
    payment_hash: [u8; 32],
    no_inflight_updates: bool,
) -> Response {
    let mut changes = state.changed.subscribe();
    if no_inflight_updates {
        loop {
            match payment_line(&state, &payment_hash) {
                Some((line, true)) => return ndjson(StatusCode::OK, Body::from(line)),
                Some((_, false)) => {}
                None => return stream_error(404, 5, "payment isn't initiated"),
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let Some((line, done)) = payment_line(&state, &payment_hash) else {
                return;
            };
            if sender.send(line).await.is_err() || done {
                return;
            }
            // The next change that decides it.
            loop {
                if changes.changed().await.is_err() {
                    return;
                }
                if payment_line(&state, &payment_hash).is_some_and(|(_, done)| done) {
                    break;
                }
            }
        }
    });
    ndjson(StatusCode::OK, Body::new(ChannelBody(receiver)))
}
