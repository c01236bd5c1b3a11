//! What the paying client's tests run against, all real and over HTTP on 127.0.0.1: the
//! facilitator service (SQLite file, simulated node), an axum app with the layer in front of
//! it, a raw TCP proxy that loses or doubles paid requests, a server that replays one stored
//! 402, and wallets that record every call.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use x402_lightning::client::wallet::{PaymentOutcome, Wallet, WalletError, WalletFuture};
use x402_lightning::client::{Account, wallet::SimWallet};
use x402_lightning::v1::AccountKey;
use x402_lightning::{HttpFacilitator, Network, Price, PriceTag, VerifiedPayment, X402Layer};
use x402_lightning_facilitator::{Config, Service, serve};

/// `/weather`'s price.
pub const WEATHER_MSAT: u64 = 10_000;
/// `/echo`'s price (a POST binding `content-type`).
pub const ECHO_MSAT: u64 = 2_000;

pub async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    (listener, addr)
}

/// The facilitator service on a SQLite file, both flows, regtest.
pub struct Facilitator {
    pub url: String,
    _directory: tempfile::TempDir,
}

impl Facilitator {
    pub async fn start() -> Self {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let config = Config {
            database_url: format!("sqlite://{}", directory.path().join("f.db").display()),
            networks: vec![Network::Regtest],
            ..Config::default()
        };
        let service = Arc::new(Service::open(&config).await.expect("the service opens"));
        let (listener, addr) = listen().await;
        tokio::spawn(serve(listener, service, std::future::pending()));
        Self {
            url: format!("http://{addr}"),
            _directory: directory,
        }
    }

    /// The simulated node's `/pay` as a wallet.
    pub fn sim_wallet(&self) -> SimWallet {
        SimWallet::new(&format!("{}/pay", self.url)).expect("a URL")
    }

    /// An account at this facilitator with `msat` deposited (paid through the simulated node).
    pub async fn funded_account(&self, msat: u64) -> Account {
        let key = AccountKey::from_secret_key(
            bitcoin::secp256k1::SecretKey::from_slice(&rand_bytes()).expect("a key"),
        );
        let account = Account::new(key, &self.url).expect("an account");
        if msat > 0 {
            let deposit = account
                .deposit("lightning-regtest", msat)
                .await
                .expect("a deposit invoice");
            let paid = self.sim_wallet().pay(&deposit.invoice, 0).await;
            assert!(matches!(paid, Ok(PaymentOutcome::Paid { .. })), "{paid:?}");
            // Reading the deposit credits it at once (the service asks its node).
            let status = account
                .deposit_status(&deposit.payment_hash)
                .await
                .expect("the deposit's state");
            assert_eq!(
                status.state,
                x402_lightning::v1::accounts::DepositState::Credited
            );
        }
        account
    }
}

fn rand_bytes() -> [u8; 32] {
    use bitcoin::hashes::{Hash as _, sha256};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let seed = format!(
        "{:?}-{}",
        std::time::SystemTime::now(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    sha256::Hash::hash(seed.as_bytes()).to_byte_array()
}

/// An axum app with the layer (both flows, regtest) in front of `/weather` (10 sat), `/echo`
/// (POST, 2 sat, binds `content-type`, answers the body), `/` (free) and `/moved` (a redirect
/// to `/weather`), bound to
/// `public_base` (its own address when `None`).
pub struct App {
    pub url: String,
    pub addr: SocketAddr,
}

impl App {
    pub async fn start(facilitator: &Facilitator, public_base: Option<&str>) -> Self {
        let (listener, addr) = listen().await;
        let url = format!("http://{addr}");
        let payments = X402Layer::builder(
            HttpFacilitator::builder(&facilitator.url)
                .build()
                .expect("a client"),
            Network::Regtest,
        )
        .public_base_url(public_base.unwrap_or(&url))
        .build()
        .expect("a layer");
        let router = Router::new()
            .route("/", get(|| async { "free" }))
            .route(
                "/moved",
                get(|| async { axum::response::Redirect::temporary("/weather") }),
            )
            .route(
                "/weather",
                get(|paid: VerifiedPayment| async move {
                    axum::Json(json!({ "sky": "clear", "msat": paid.amount_msat }))
                })
                .route_layer(payments.charge(Price::msat(WEATHER_MSAT)).expect("a price")),
            )
            .route(
                "/echo",
                post(|body: Bytes| async move { body }).route_layer(
                    payments
                        .charge(
                            PriceTag::fixed(Price::msat(ECHO_MSAT)).bind_headers(["content-type"]),
                        )
                        .expect("a price"),
                ),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, addr }
    }
}

/// A raw TCP proxy in front of an app: loses the first `drop_paid` paid requests (closes the
/// connection without answering), or sends the next paid request upstream twice and answers
/// with the second answer (`double_next`). Counts the paid requests and keeps their proofs.
#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    pub drop_paid: Arc<AtomicU32>,
    pub double_next: Arc<AtomicBool>,
    pub proofs: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// A listener for the proxy, bound first so the app can name it as its public origin.
    pub async fn bind() -> (TcpListener, String) {
        let (listener, addr) = listen().await;
        (listener, format!("http://{addr}"))
    }

    pub fn start(listener: TcpListener, url: String, upstream: SocketAddr) -> Self {
        let proxy = Self {
            url,
            drop_paid: Arc::default(),
            double_next: Arc::default(),
            proofs: Arc::default(),
        };
        let state = proxy.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move { state.relay(inbound, upstream).await });
            }
        });
        proxy
    }

    pub fn paid_requests(&self) -> Vec<String> {
        self.proofs.lock().expect("not poisoned").clone()
    }

    async fn relay(&self, mut inbound: TcpStream, upstream: SocketAddr) {
        let Some((head, rest)) = read_head(&mut inbound).await else {
            return;
        };
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let proof = text
            .lines()
            .find_map(|line| {
                line.strip_prefix("payment-signature:")
                    .or_else(|| line.strip_prefix("x-payment:"))
            })
            .map(|value| value.trim().to_owned());
        // One request per connection, so every request passes through here.
        let head = close_after(&head);
        if let Some(proof) = proof {
            self.proofs.lock().expect("not poisoned").push(proof);
            let dropped = self
                .drop_paid
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
            if dropped {
                return;
            }
            if self.double_next.swap(false, Ordering::SeqCst) {
                let mut first = TcpStream::connect(upstream).await.expect("the app");
                first.write_all(&head).await.expect("sent");
                first.write_all(&rest).await.expect("sent");
                let mut answer = Vec::new();
                let _ = first.read_to_end(&mut answer).await;
            }
        }
        let Ok(mut outbound) = TcpStream::connect(upstream).await else {
            return;
        };
        if outbound.write_all(&head).await.is_err() || outbound.write_all(&rest).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    }
}

/// The request head (through the blank line) and what was read after it.
async fn read_head(stream: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Some((buffer, rest));
        }
        if buffer.len() > 64 * 1024 {
            return None;
        }
    }
}

/// The head with `connection: close` added, so one connection carries one request.
fn close_after(head: &[u8]) -> Vec<u8> {
    let mut out = head[..head.len() - 2].to_vec();
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

/// A server that answers every request with one stored 402 (status, headers, body), and
/// counts the requests that carry a payment header.
#[derive(Clone)]
pub struct Replay {
    pub url: String,
    pub paid_requests: Arc<AtomicUsize>,
    answer: Arc<Mutex<Option<(HeaderMap, Bytes)>>>,
}

impl Replay {
    pub async fn bind() -> (TcpListener, String) {
        Proxy::bind().await
    }

    pub fn start(listener: TcpListener, url: String) -> Self {
        let replay = Self {
            url,
            paid_requests: Arc::default(),
            answer: Arc::default(),
        };
        let state = replay.clone();
        let router = Router::new().fallback(any(move |headers: HeaderMap| {
            let state = state.clone();
            async move {
                if headers.contains_key("payment-signature") || headers.contains_key("x-payment") {
                    state.paid_requests.fetch_add(1, Ordering::SeqCst);
                }
                let answer = state.answer.lock().expect("not poisoned").clone();
                match answer {
                    Some((headers, body)) => {
                        (StatusCode::PAYMENT_REQUIRED, headers, body).into_response()
                    }
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }
        }));
        tokio::spawn(async move { axum::serve(listener, router).await });
        replay
    }

    /// Serves `challenge` from now on.
    pub fn serve(&self, challenge: &Challenge) {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(header) = &challenge.header {
            headers.insert(
                HeaderName::from_static("payment-required"),
                HeaderValue::from_str(header).expect("a header value"),
            );
        }
        *self.answer.lock().expect("not poisoned") =
            Some((headers, Bytes::from(challenge.body.to_string())));
    }

    pub fn paid(&self) -> usize {
        self.paid_requests.load(Ordering::SeqCst)
    }
}

/// A 402 taken from an app: the `PAYMENT-REQUIRED` header's text and the v1 body.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub header: Option<String>,
    pub body: Value,
}

impl Challenge {
    /// A fresh 402 of `url` (GET).
    pub async fn fetch(url: &str) -> Self {
        let response = reqwest::get(url).await.expect("the app answers");
        assert_eq!(response.status(), 402);
        let header = response
            .headers()
            .get("payment-required")
            .map(|value| value.to_str().expect("text").to_owned());
        Self {
            header,
            body: response.json().await.expect("the v1 body"),
        }
    }

    /// The decoded `PAYMENT-REQUIRED`.
    pub fn required(&self) -> Value {
        let header = self.header.as_deref().expect("an lnbtc challenge");
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, header)
            .expect("base64");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    /// This challenge with its `PAYMENT-REQUIRED` changed by `change`, and no v1 offer.
    pub fn lnbtc_changed(&self, change: impl FnOnce(&mut Value)) -> Self {
        let mut required = self.required();
        change(&mut required);
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            serde_json::to_vec(&required).expect("JSON"),
        );
        Self {
            header: Some(header),
            body: json!({ "x402Version": 1, "error": "X-PAYMENT header is required", "accepts": [] }),
        }
    }

    /// This challenge with its v1 body changed by `change`, and no lnbtc offer.
    pub fn v1_changed(&self, change: impl FnOnce(&mut Value)) -> Self {
        let mut body = self.body.clone();
        change(&mut body);
        Self { header: None, body }
    }
}

/// A wallet that records every call and answers as told: through an inner wallet, or with a
/// scripted outcome or error.
#[derive(Clone, Debug)]
pub struct Recording {
    inner: Option<SimWallet>,
    script: Arc<Mutex<Script>>,
    pub pays: Arc<Mutex<Vec<String>>>,
    pub tracks: Arc<AtomicUsize>,
}

/// What a [`Recording`] wallet answers.
#[derive(Clone, Debug)]
pub enum Script {
    /// Pays through the inner wallet.
    Pay,
    /// Answers in flight; tracking says in flight.
    InFlight,
    /// Answers a wallet error (HTTP 500); tracking knows nothing.
    Error,
    /// Answers failed; tracking says failed.
    Fail,
}

impl Recording {
    pub fn paying_through(wallet: SimWallet) -> Self {
        Self {
            inner: Some(wallet),
            script: Arc::new(Mutex::new(Script::Pay)),
            pays: Arc::default(),
            tracks: Arc::default(),
        }
    }

    pub fn scripted(script: Script) -> Self {
        Self {
            inner: None,
            script: Arc::new(Mutex::new(script)),
            pays: Arc::default(),
            tracks: Arc::default(),
        }
    }

    pub fn set(&self, script: Script) {
        *self.script.lock().expect("not poisoned") = script;
    }

    pub fn pay_count(&self) -> usize {
        self.pays.lock().expect("not poisoned").len()
    }

    fn script(&self) -> Script {
        self.script.lock().expect("not poisoned").clone()
    }
}

impl Wallet for Recording {
    fn pay<'a>(&'a self, invoice: &'a str, max_fee_msat: u64) -> WalletFuture<'a, PaymentOutcome> {
        self.pays
            .lock()
            .expect("not poisoned")
            .push(invoice.to_owned());
        Box::pin(async move {
            match (self.script(), &self.inner) {
                (Script::Pay, Some(inner)) => inner.pay(invoice, max_fee_msat).await,
                (Script::Pay, None) => Err(WalletError::Refused("no inner wallet".into())),
                (Script::InFlight, _) => Ok(PaymentOutcome::InFlight),
                (Script::Error, _) => Err(WalletError::Status {
                    status: 500,
                    message: "the wallet fell over".into(),
                }),
                (Script::Fail, _) => Ok(PaymentOutcome::Failed {
                    reason: "no route".into(),
                }),
            }
        })
    }

    fn track<'a>(
        &'a self,
        _payment_hash: &'a [u8; 32],
    ) -> WalletFuture<'a, Option<PaymentOutcome>> {
        self.tracks.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            Ok(match self.script() {
                Script::InFlight => Some(PaymentOutcome::InFlight),
                Script::Fail => Some(PaymentOutcome::Failed {
                    reason: "no route".into(),
                }),
                Script::Pay | Script::Error => None,
            })
        })
    }
}
