#![cfg(feature = "client")]
//! Adversarial tests of the paying client (`x402_lightning::client`) and its CLI: hostile
//! servers, hostile wallets, budget races. Every attack checks what was actually paid (the
//! wallet's calls, the proofs the server received), not only what the client says.
//!
//! Most attacks run against a hostile server built here ([`Hostile`]) that mints its own
//! invoices with a [`MockNode`] ([`Forge`]), so a challenge can say anything; an [`Oracle`]
//! wallet pays those invoices (it knows their preimages) or lies as told. The real facilitator
//! service, the app behind the layer and the TCP proxy of `client_support` are used where the
//! real thing matters.
//!
//! Tests marked `#[ignore = "BUG: …"]` show a real bug: they assert the promised behaviour and
//! fail today.

mod client_support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::DisplayHex as _;
use client_support::{App, Facilitator, Proxy, Recording, WEATHER_MSAT, listen};
use serde_json::{Value, json};
use x402_lightning::Network;
use x402_lightning::client::wallet::{
    LndWallet, LndWalletConfig, PaymentOutcome, SimWallet, Wallet, WalletError, WalletFuture,
};
use x402_lightning::client::{
    Account, Budget, Flow, PayError, Payer, PayerBuilder, Receipt,
    offer::{NO_OFFER, REDIRECTED},
};
use x402_lightning::clock::ManualClock;
use x402_lightning::lnbtc::binding::{BoundHeaders, http_binding};
use x402_lightning::lnbtc::reason;
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning::v1::AccountKey;

// =============================================================================================
// The forge: invoices and challenges that say anything
// =============================================================================================

/// A Lightning node key minting real signed invoices, and the preimages it minted them with.
#[derive(Clone)]
struct Forge {
    node: MockNode,
    preimages: Arc<Mutex<HashMap<[u8; 32], [u8; 32]>>>,
}

/// A minted invoice.
#[derive(Clone, Debug)]
struct Minted {
    invoice: String,
    preimage: [u8; 32],
}

/// What an lnbtc offer says, and what its invoice holds: equal unless a test changes one.
#[derive(Clone, Debug)]
struct Terms {
    url: String,
    method: &'static str,
    body: Vec<u8>,
    /// Bound header names, and the header lines the binding is computed from.
    bound: Vec<&'static str>,
    header_lines: Vec<(&'static str, &'static str)>,
    /// The requirements' `amount`.
    amount_msat: u64,
    /// The invoice's amount.
    invoice_msat: u64,
    /// The requirements' `maxTimeoutSeconds`.
    max_timeout: u64,
    /// The invoice's expiry.
    expiry: u64,
    created_at: Duration,
    network: Network,
}

impl Terms {
    /// A GET of `url` for `amount_msat`, an invoice valid for 600 s from now, regtest.
    fn get(url: &str, amount_msat: u64) -> Self {
        Self {
            url: url.to_owned(),
            method: "GET",
            body: Vec::new(),
            bound: Vec::new(),
            header_lines: Vec::new(),
            amount_msat,
            invoice_msat: amount_msat,
            max_timeout: 600,
            expiry: 600,
            created_at: x402_lightning::invoice::unix_now(),
            network: Network::Regtest,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.to_lower_hex_string()
}

/// The `http:1` request hash of a request.
fn request_hash(terms: &Terms) -> [u8; 32] {
    let bound = BoundHeaders::new(terms.bound.iter().copied()).expect("bound headers");
    let lines: Vec<(&str, &[u8])> = terms
        .header_lines
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()))
        .collect();
    http_binding(terms.method, &terms.url, &terms.body, &bound, &lines)
        .expect("a binding")
        .request_hash
        .0
}

impl Forge {
    fn new() -> Self {
        Self {
            node: MockNode::random(),
            preimages: Arc::default(),
        }
    }

    fn pay_to(&self) -> String {
        self.node.pay_to().to_string()
    }

    fn mint(&self, spec: &InvoiceSpec) -> Minted {
        let minted = self.node.mint(spec).expect("minted");
        let hash = sha256::Hash::hash(&minted.preimage).to_byte_array();
        self.preimages
            .lock()
            .expect("not poisoned")
            .insert(hash, minted.preimage);
        Minted {
            invoice: minted.invoice.to_string(),
            preimage: minted.preimage,
        }
    }

    /// The preimage of an invoice this forge minted.
    fn preimage_of(&self, invoice: &str) -> Option<[u8; 32]> {
        let decoded = x402_lightning::lnbtc::invoice::decode(invoice).ok()?;
        self.preimages
            .lock()
            .expect("not poisoned")
            .get(&decoded.payment_hash)
            .copied()
    }

    /// lnbtc requirements for `terms`, and their invoice.
    fn lnbtc(&self, terms: &Terms) -> (Value, Minted) {
        let hash = request_hash(terms);
        let minted = self.mint(&InvoiceSpec {
            network: terms.network,
            amount_msat: terms.invoice_msat,
            description: String::new(),
            description_hash: Some(hash),
            created_at: terms.created_at,
            expiry: Duration::from_secs(terms.expiry),
        });
        let requirements = json!({
            "scheme": "exact",
            "network": terms.network.lnbtc_id(),
            "amount": terms.amount_msat.to_string(),
            "asset": "BTC",
            "payTo": self.pay_to(),
            "maxTimeoutSeconds": terms.max_timeout,
            "extra": {
                "paymentFlow": "upfront",
                "assetTransferMethod": "bolt11",
                "requestHash": hex(&hash),
                "requestBindingProfile": "http:1",
                "requestBindingParams": { "headers": terms.bound },
                "invoice": minted.invoice,
            }
        });
        (requirements, minted)
    }

    /// A seed-flow (v1) `accepts` entry for `url`: `maxAmountRequired` = `amount_msat`, the
    /// invoice for `invoice_msat`, regtest, 60 s.
    fn v1(&self, url: &str, amount_msat: u64, invoice_msat: u64) -> (Value, Minted) {
        let minted = self.mint(&InvoiceSpec {
            description: "weather".into(),
            expiry: Duration::from_secs(60),
            ..InvoiceSpec::new(Network::Regtest, invoice_msat)
        });
        (
            v1_entry(url, &self.pay_to(), amount_msat, &minted.invoice),
            minted,
        )
    }
}

fn v1_entry(url: &str, pay_to: &str, amount_msat: u64, invoice: &str) -> Value {
    json!({
        "scheme": "exact",
        "network": "lightning-regtest",
        "maxAmountRequired": amount_msat.to_string(),
        "asset": "BTC",
        "payTo": pay_to,
        "resource": url,
        "description": "weather",
        "mimeType": "application/json",
        "maxTimeoutSeconds": 60,
        "extra": { "invoice": invoice },
    })
}

/// A `PAYMENT-REQUIRED` value for `url` offering `accepts`.
fn payment_required(url: &str, accepts: Vec<Value>) -> String {
    let required = json!({
        "x402Version": 2,
        "error": "PAYMENT-SIGNATURE header is required",
        "resource": { "url": url },
        "accepts": accepts,
    });
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&required).expect("JSON"))
}

/// A 402: the `PAYMENT-REQUIRED` header (when given) and the v1 body with `v1_accepts`.
fn challenge(header: Option<String>, v1_accepts: Vec<Value>) -> Response {
    let body = json!({
        "x402Version": 1,
        "error": "X-PAYMENT header is required",
        "accepts": v1_accepts,
    });
    let mut response = (
        StatusCode::PAYMENT_REQUIRED,
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ],
        body.to_string(),
    )
        .into_response();
    if let Some(header) = header {
        response.headers_mut().insert(
            HeaderName::from_static("payment-required"),
            HeaderValue::from_str(&header).expect("a header value"),
        );
    }
    response
}

/// A fresh lnbtc-only challenge for `seen`'s URL at `amount_msat`.
fn lnbtc_challenge(forge: &Forge, seen: &Seen, amount_msat: u64) -> Response {
    let (offer, _) = forge.lnbtc(&Terms::get(&seen.url, amount_msat));
    challenge(Some(payment_required(&seen.url, vec![offer])), vec![])
}

/// The preimage of an lnbtc proof (`PAYMENT-SIGNATURE`), if it proves its accepted invoice.
fn proven_hash(proof: &str) -> Option<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(proof.trim())
        .ok()?;
    let payment: Value = serde_json::from_slice(&bytes).ok()?;
    let invoice = payment["accepted"]["extra"]["invoice"].as_str()?;
    let preimage = payment["payload"]["preimage"].as_str()?;
    let decoded = x402_lightning::lnbtc::invoice::decode(invoice).ok()?;
    let preimage = <[u8; 32] as bitcoin::hex::FromHex>::from_hex(preimage).ok()?;
    decoded
        .is_paid_by(&preimage)
        .then_some(decoded.payment_hash)
}

/// The `X-PAYMENT` value decoded.
fn x_payment(proof: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(proof.trim())
        .expect("base64");
    serde_json::from_slice(&bytes).expect("JSON")
}

// =============================================================================================
// The hostile server
// =============================================================================================

/// One request as the hostile server saw it.
struct Seen {
    /// `http://` + the Host header + the path and query: the URL the client asked for.
    url: String,
    headers: HeaderMap,
    body: Bytes,
    /// The `PAYMENT-SIGNATURE` or `X-PAYMENT` value.
    proof: Option<String>,
}

/// A server answering every request with `handler`; it counts the requests and keeps the
/// proofs it received.
#[derive(Clone)]
struct Hostile {
    url: String,
    addr: SocketAddr,
    proofs: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicUsize>,
}

impl Hostile {
    async fn start<F>(handler: F) -> Self
    where
        F: Fn(&Seen) -> Response + Send + Sync + 'static,
    {
        let (listener, addr) = listen().await;
        let hostile = Self {
            url: format!("http://{addr}"),
            addr,
            proofs: Arc::default(),
            requests: Arc::default(),
        };
        let state = hostile.clone();
        let handler = Arc::new(handler);
        let router =
            Router::new().fallback(any(move |uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                let handler = Arc::clone(&handler);
                async move {
                    state.requests.fetch_add(1, Ordering::SeqCst);
                    let proof = headers
                        .get("payment-signature")
                        .or_else(|| headers.get("x-payment"))
                        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
                    if let Some(proof) = &proof {
                        state
                            .proofs
                            .lock()
                            .expect("not poisoned")
                            .push(proof.clone());
                    }
                    let host = headers
                        .get("host")
                        .and_then(|host| host.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let target = uri
                        .path_and_query()
                        .map_or("/", axum::http::uri::PathAndQuery::as_str);
                    let seen = Seen {
                        url: format!("http://{host}{target}"),
                        headers,
                        body,
                        proof,
                    };
                    handler(&seen)
                }
            }));
        tokio::spawn(async move { axum::serve(listener, router).await });
        hostile
    }

    fn proofs(&self) -> Vec<String> {
        self.proofs.lock().expect("not poisoned").clone()
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// Sells every URL for `amount_msat` in the lnbtc flow: a fresh challenge to each unpaid
/// request, 200 `paid content` to any paid one.
fn seller(forge: Forge, amount_msat: u64) -> impl Fn(&Seen) -> Response + Send + Sync + 'static {
    move |seen| match &seen.proof {
        None => lnbtc_challenge(&forge, seen, amount_msat),
        Some(_) => (StatusCode::OK, "paid content").into_response(),
    }
}

/// Serves one challenge (built on the first unpaid request) to every unpaid request; a paid
/// request whose lnbtc proof is valid and new gets 200, any other paid request 402
/// `duplicate_settlement`.
fn sticky_seller(
    forge: Forge,
    amount_msat: u64,
) -> impl Fn(&Seen) -> Response + Send + Sync + 'static {
    let stored: OnceLock<String> = OnceLock::new();
    let settled: Mutex<Vec<[u8; 32]>> = Mutex::default();
    move |seen| match &seen.proof {
        None => {
            let header = stored.get_or_init(|| {
                let (offer, _) = forge.lnbtc(&Terms::get(&seen.url, amount_msat));
                payment_required(&seen.url, vec![offer])
            });
            challenge(Some(header.clone()), vec![])
        }
        Some(proof) => {
            let mut settled = settled.lock().expect("not poisoned");
            match proven_hash(proof) {
                Some(hash) if !settled.contains(&hash) => {
                    settled.push(hash);
                    (StatusCode::OK, "paid content").into_response()
                }
                _ => (
                    StatusCode::PAYMENT_REQUIRED,
                    [("content-type", "application/json")],
                    json!({ "x402Version": 2, "error": "duplicate_settlement" }).to_string(),
                )
                    .into_response(),
            }
        }
    }
}

/// A stand-in for the simulated node's `POST /pay`: pays the forge's invoices (with the
/// preimage of another invoice when `lie`), 404 for any other.
fn sim_pay(forge: Forge, lie: bool) -> impl Fn(&Seen) -> Response + Send + Sync + 'static {
    move |seen| {
        let invoice = serde_json::from_slice::<Value>(&seen.body)
            .ok()
            .and_then(|body| body["invoice"].as_str().map(str::to_owned));
        match invoice
            .as_deref()
            .and_then(|invoice| forge.preimage_of(invoice))
        {
            Some(preimage) => {
                let preimage = if lie {
                    forge
                        .mint(&InvoiceSpec::new(Network::Regtest, 1_000))
                        .preimage
                } else {
                    preimage
                };
                axum::Json(json!({ "preimage": hex(&preimage) })).into_response()
            }
            None => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "error": "unknown invoice" })),
            )
                .into_response(),
        }
    }
}

/// A body of spaces that never ends, as fast as the client reads it.
struct Endless;

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 16 * 1024] = [b' '; 16 * 1024];
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(&CHUNK)))))
    }
}

/// A body that sends `{` and then nothing, ever.
struct Stalled {
    sent: bool,
}

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.sent {
            return Poll::Pending;
        }
        self.sent = true;
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"{")))))
    }
}

// =============================================================================================
// The oracle wallet
// =============================================================================================

/// How the [`Oracle`] answers `pay`.
#[derive(Clone, Copy, Debug)]
enum Pays {
    /// Paid, with the invoice's own preimage and this routing fee.
    Rightly {
        fee_msat: u64,
    },
    /// "Paid", with the preimage of another invoice.
    WithAnotherPreimage,
    InFlight,
    Error,
    Fail,
}

/// How the [`Oracle`] answers `track`.
#[derive(Clone, Copy, Debug)]
enum Tracks {
    Nothing,
    InFlight,
    /// Paid, with the right preimage and no fee.
    Paid,
    Failed,
}

/// A wallet for the forge's invoices: answers as told, records every call.
#[derive(Clone)]
struct Oracle {
    forge: Forge,
    pays_as: Arc<Mutex<Pays>>,
    tracks_as: Arc<Mutex<Tracks>>,
    delay: Duration,
    /// (invoice, max fee) of every `pay`.
    pays: Arc<Mutex<Vec<(String, u64)>>>,
    tracks: Arc<AtomicUsize>,
    /// The preimages handed out that were not the invoice's.
    lies: Arc<Mutex<Vec<[u8; 32]>>>,
}

impl fmt::Debug for Oracle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Oracle")
    }
}

impl Oracle {
    fn new(forge: &Forge, pays: Pays) -> Self {
        Self {
            forge: forge.clone(),
            pays_as: Arc::new(Mutex::new(pays)),
            tracks_as: Arc::new(Mutex::new(Tracks::Nothing)),
            delay: Duration::ZERO,
            pays: Arc::default(),
            tracks: Arc::default(),
            lies: Arc::default(),
        }
    }

    fn slow(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn set_pays(&self, pays: Pays) {
        *self.pays_as.lock().expect("not poisoned") = pays;
    }

    fn set_tracks(&self, tracks: Tracks) {
        *self.tracks_as.lock().expect("not poisoned") = tracks;
    }

    fn paid(&self) -> Vec<(String, u64)> {
        self.pays.lock().expect("not poisoned").clone()
    }

    fn pay_count(&self) -> usize {
        self.pays.lock().expect("not poisoned").len()
    }
}

impl Wallet for Oracle {
    fn pay<'a>(&'a self, invoice: &'a str, max_fee_msat: u64) -> WalletFuture<'a, PaymentOutcome> {
        self.pays
            .lock()
            .expect("not poisoned")
            .push((invoice.to_owned(), max_fee_msat));
        let mode = *self.pays_as.lock().expect("not poisoned");
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            match mode {
                Pays::Rightly { fee_msat } => Ok(PaymentOutcome::Paid {
                    preimage: self
                        .forge
                        .preimage_of(invoice)
                        .expect("an invoice of the forge"),
                    fee_msat,
                }),
                Pays::WithAnotherPreimage => {
                    let other = self.forge.mint(&InvoiceSpec::new(Network::Regtest, 1_000));
                    self.lies.lock().expect("not poisoned").push(other.preimage);
                    Ok(PaymentOutcome::Paid {
                        preimage: other.preimage,
                        fee_msat: 0,
                    })
                }
                Pays::InFlight => Ok(PaymentOutcome::InFlight),
                Pays::Error => Err(WalletError::Status {
                    status: 500,
                    message: "the wallet fell over".into(),
                }),
                Pays::Fail => Ok(PaymentOutcome::Failed {
                    reason: "no route".into(),
                }),
            }
        })
    }

    fn track<'a>(&'a self, payment_hash: &'a [u8; 32]) -> WalletFuture<'a, Option<PaymentOutcome>> {
        self.tracks.fetch_add(1, Ordering::SeqCst);
        let mode = *self.tracks_as.lock().expect("not poisoned");
        Box::pin(async move {
            Ok(match mode {
                Tracks::Nothing => None,
                Tracks::InFlight => Some(PaymentOutcome::InFlight),
                Tracks::Paid => {
                    let preimage = *self
                        .forge
                        .preimages
                        .lock()
                        .expect("not poisoned")
                        .get(payment_hash)
                        .expect("a payment of the forge");
                    Some(PaymentOutcome::Paid {
                        preimage,
                        fee_msat: 0,
                    })
                }
                Tracks::Failed => Some(PaymentOutcome::Failed {
                    reason: "no route".into(),
                }),
            })
        })
    }
}

// =============================================================================================
// The payer
// =============================================================================================

/// A payer on regtest that retries at once.
fn payer() -> PayerBuilder {
    Payer::builder()
        .allow_network(Network::Regtest)
        .delivery(3, Duration::ZERO)
}

/// An account whose facilitator is never called (the seed flow's payer only signs).
fn offline_account() -> Account {
    let key = AccountKey::from_secret_hex(ACCOUNT_SECRET).expect("a key");
    Account::new(key, "http://127.0.0.1:9").expect("an account")
}

const ACCOUNT_SECRET: &str = "4242424242424242424242424242424242424242424242424242424242424242";

/// GETs `url` through `payer` (with a 20 s guard against a hang).
async fn get(payer: &Payer, url: &str) -> Result<reqwest::Response, PayError> {
    get_with(payer, reqwest::Client::new(), url).await
}

async fn get_with(
    payer: &Payer,
    client: reqwest::Client,
    url: &str,
) -> Result<reqwest::Response, PayError> {
    let sent = payer.client(client).get(url).send();
    let result = tokio::time::timeout(Duration::from_secs(20), sent)
        .await
        .expect("the payer answers within 20 s");
    result.map_err(|err| match err {
        reqwest_middleware::Error::Middleware(err) => match err.downcast::<PayError>() {
            Ok(err) => err,
            Err(err) => panic!("not a payment error: {err}"),
        },
        reqwest_middleware::Error::Reqwest(err) => panic!("a transport error: {err}"),
    })
}

/// As [`get`], with transport errors as they are.
async fn try_get(payer: &Payer, url: &str) -> reqwest_middleware::Result<reqwest::Response> {
    let sent = payer.client(reqwest::Client::new()).get(url).send();
    tokio::time::timeout(Duration::from_secs(20), sent)
        .await
        .expect("the payer answers within 20 s")
}

fn receipt(response: &reqwest::Response) -> Receipt {
    response
        .extensions()
        .get::<Receipt>()
        .cloned()
        .expect("a paid response carries its receipt")
}

fn unpayable_reason(err: &PayError) -> &'static str {
    match err {
        PayError::Unpayable(unpayable) => unpayable.reason,
        other => panic!("an unpayable offer, not {other}"),
    }
}

fn budget_limit(err: &PayError) -> &'static str {
    match err {
        PayError::Budget(refusal) => refusal.limit(),
        other => panic!("a budget refusal, not {other}"),
    }
}

const STRANGER: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

// =============================================================================================
// 1. Never above the budget
// =============================================================================================

#[tokio::test]
async fn a_challenge_cheaper_than_its_invoice_is_not_paid_in_either_flow() {
    let forge = Forge::new();
    let cheat = forge.clone();
    // The challenge says 1 sat; its invoice asks 50 sat.
    let hostile = Hostile::start(move |seen| {
        let mut terms = Terms::get(&seen.url, 1_000);
        terms.invoice_msat = 50_000;
        let (lnbtc, _) = cheat.lnbtc(&terms);
        let (v1, _) = cheat.v1(&seen.url, 1_000, 50_000);
        challenge(Some(payment_required(&seen.url, vec![lnbtc])), vec![v1])
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let budget = Budget::default().max_per_payment_msat(5_000);
    let lnbtc = payer()
        .wallet(wallet.clone())
        .budget(budget.clone())
        .build()
        .expect("a payer");
    let err = get(&lnbtc, &hostile.at("/weather"))
        .await
        .expect_err("refused");
    assert_eq!(unpayable_reason(&err), reason::INVOICE_AMOUNT_MISMATCH);
    assert!(!err.may_have_paid());

    let v1 = payer()
        .account(offline_account())
        .budget(budget)
        .build()
        .expect("a payer");
    let err = get(&v1, &hostile.at("/weather"))
        .await
        .expect_err("refused");
    assert_eq!(
        unpayable_reason(&err),
        x402_lightning::types::reason::INVOICE_AMOUNT
    );
    assert_eq!(wallet.pay_count(), 0, "the wallet was never asked");
    assert!(hostile.proofs().is_empty(), "no proof, no signature sent");
}

/// Several lnbtc offers: a cheap one that fails a check first, a dearer valid one second. The
/// budget must judge the valid one (what would be paid), never the cheap decoy.
#[tokio::test]
async fn with_several_offers_the_budget_judges_the_one_that_would_be_paid() {
    type Spoil = fn(&mut Terms, &mut Value);
    let spoilers: [(&str, Spoil); 6] = [
        ("amount below its invoice's", |terms, _| {
            terms.invoice_msat = 30_000;
        }),
        ("another payee", |_, offer| {
            offer["payTo"] = json!(STRANGER);
        }),
        ("expired", |terms, _| {
            terms.created_at -= Duration::from_secs(3_600);
        }),
        ("an invoice of another network", |terms, offer| {
            // A testnet invoice under regtest requirements.
            terms.network = Network::Testnet;
            offer["network"] = json!(Network::Regtest.lnbtc_id());
        }),
        ("bound to another request", |terms, _| {
            terms.method = "POST";
        }),
        ("an expiry that is not maxTimeoutSeconds", |terms, _| {
            terms.expiry = 10 * 365 * 24 * 3_600;
        }),
    ];
    for (what, spoil) in spoilers {
        let forge = Forge::new();
        let minter = forge.clone();
        let valid_invoice: Arc<Mutex<Option<String>>> = Arc::default();
        let remembered = Arc::clone(&valid_invoice);
        let hostile = Hostile::start(move |seen| {
            if seen.proof.is_some() {
                return (StatusCode::OK, "paid content").into_response();
            }
            let mut terms = Terms::get(&seen.url, 1_000);
            let mut decoy = json!({});
            spoil(&mut terms, &mut decoy);
            let (mut cheap, _) = minter.lnbtc(&terms);
            for (member, value) in decoy.as_object().expect("an object") {
                cheap[member] = value.clone();
            }
            let (dear, minted) = minter.lnbtc(&Terms::get(&seen.url, 30_000));
            *remembered.lock().expect("not poisoned") = Some(minted.invoice);
            challenge(Some(payment_required(&seen.url, vec![cheap, dear])), vec![])
        })
        .await;
        let url = hostile.at("/weather");

        let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
        let tight = payer()
            .wallet(wallet.clone())
            .budget(Budget::default().max_per_payment_msat(20_000))
            .build()
            .expect("a payer");
        let err = get(&tight, &url).await.expect_err(what);
        assert_eq!(budget_limit(&err), "max-cost", "{what}: {err}");
        assert!(err.to_string().contains("30000 msat"), "{what}: {err}");
        assert_eq!(wallet.pay_count(), 0, "{what}: nothing paid");

        let roomy = payer()
            .wallet(wallet.clone())
            .budget(Budget::default().max_per_payment_msat(40_000))
            .build()
            .expect("a payer");
        let response = get(&roomy, &url).await.expect(what);
        assert_eq!(receipt(&response).amount_msat, 30_000, "{what}");
        let paid = wallet.paid();
        assert_eq!(paid.len(), 1, "{what}");
        assert_eq!(
            Some(&paid[0].0),
            valid_invoice.lock().expect("not poisoned").as_ref(),
            "{what}: the valid offer's invoice was paid, never the decoy's"
        );
        assert_eq!(paid[0].1, 1_000, "{what}: the fee cap of 30 sat is 1 sat");
    }
}

/// One 402 with an lnbtc offer and a v1 offer of different invoices and amounts: the budget
/// applies to the offer of the flow that pays, and only that offer's invoice is paid or signed.
#[tokio::test]
async fn v1_and_lnbtc_offers_of_different_amounts_are_budgeted_as_paid() {
    let forge = Forge::new();
    let minter = forge.clone();
    let amounts: Arc<Mutex<(u64, u64)>> = Arc::new(Mutex::new((30_000, 5_000)));
    let invoices: Arc<Mutex<(String, String)>> = Arc::default();
    let (set_amounts, set_invoices) = (Arc::clone(&amounts), Arc::clone(&invoices));
    let hostile = Hostile::start(move |seen| {
        if seen.proof.is_some() {
            return (StatusCode::OK, "paid content").into_response();
        }
        let (lnbtc_msat, v1_msat) = *set_amounts.lock().expect("not poisoned");
        let (lnbtc, a) = minter.lnbtc(&Terms::get(&seen.url, lnbtc_msat));
        let (v1, b) = minter.v1(&seen.url, v1_msat, v1_msat);
        *set_invoices.lock().expect("not poisoned") = (a.invoice, b.invoice);
        challenge(Some(payment_required(&seen.url, vec![lnbtc])), vec![v1])
    })
    .await;
    let url = hostile.at("/weather");
    let budget = Budget::default().max_per_payment_msat(20_000);
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });

    // lnbtc preferred, its 30 sat over the 20 sat maximum: refused, nothing paid or signed.
    let both = payer()
        .wallet(wallet.clone())
        .account(offline_account())
        .budget(budget.clone())
        .build()
        .expect("a payer");
    let err = get(&both, &url).await.expect_err("over budget");
    assert_eq!(budget_limit(&err), "max-cost");
    assert_eq!(wallet.pay_count(), 0);
    assert!(hostile.proofs().is_empty());

    // v1 preferred: its 5 sat are signed, the invoice of the v1 offer exactly.
    let v1_first = payer()
        .wallet(wallet.clone())
        .account(offline_account())
        .prefer(Flow::V1)
        .budget(budget.clone())
        .build()
        .expect("a payer");
    let response = get(&v1_first, &url).await.expect("paid in v1");
    let paid = receipt(&response);
    assert_eq!((paid.flow, paid.amount_msat), (Flow::V1, 5_000));
    let proofs = hostile.proofs();
    assert_eq!(proofs.len(), 1);
    let v1_invoice = invoices.lock().expect("not poisoned").1.clone();
    assert_eq!(
        x_payment(&proofs[0])["payload"]["invoice"],
        json!(v1_invoice)
    );
    assert_eq!(wallet.pay_count(), 0, "the wallet was not asked");

    // Amounts swapped: v1 preferred at 30 sat is refused, though lnbtc would fit.
    *amounts.lock().expect("not poisoned") = (5_000, 30_000);
    let err = get(&v1_first, &url).await.expect_err("over budget");
    assert_eq!(budget_limit(&err), "max-cost");
    assert_eq!(hostile.proofs().len(), 1, "nothing more sent");

    // A wallet only: the lnbtc offer's invoice is what is paid, at its amount.
    let wallet_only = payer()
        .wallet(wallet.clone())
        .budget(budget)
        .build()
        .expect("a payer");
    let response = get(&wallet_only, &url).await.expect("paid in lnbtc");
    assert_eq!(receipt(&response).amount_msat, 5_000);
    let lnbtc_invoice = invoices.lock().expect("not poisoned").0.clone();
    assert_eq!(wallet.paid(), vec![(lnbtc_invoice, 1_000)]);
}

/// A wallet that reports a routing fee above the cap it was given: the money has left, so the
/// receipt tells the real fee and the period total counts it.
#[tokio::test]
async fn a_fee_above_the_cap_is_reported_and_counted_in_the_period_total() {
    let forge = Forge::new();
    let hostile = Hostile::start(seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 9_000 });
    let payer = payer()
        .wallet(wallet.clone())
        .budget(
            Budget::default()
                .max_fee_msat(1_000)
                .max_per_period_msat(40_000, Duration::from_secs(3_600)),
        )
        .build()
        .expect("a payer");
    let url = hostile.at("/weather");
    let first = get(&payer, &url).await.expect("paid");
    assert_eq!(receipt(&first).fee_msat, 9_000, "the real fee");
    assert_eq!(wallet.paid()[0].1, 1_000, "the wallet was given the cap");
    // 19,000 counted; 19,000 + 11,000 reserved fits in 40,000 and costs 19,000 again.
    get(&payer, &url).await.expect("the second fits");
    // 38,000 counted: a third (11,000 reserved) does not fit.
    let err = get(&payer, &url).await.expect_err("over the period total");
    assert_eq!(budget_limit(&err), "per-period");
    assert_eq!(wallet.pay_count(), 2);
}

/// An absurd fee (u64::MAX msat) from a hostile wallet: no overflow, and the period total is
/// spent.
#[tokio::test]
async fn an_absurd_fee_from_the_wallet_does_not_overflow_the_period_total() {
    let forge = Forge::new();
    let hostile = Hostile::start(seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: u64::MAX });
    let payer = payer()
        .wallet(wallet.clone())
        .budget(Budget::default().max_per_period_msat(1_000_000, Duration::from_secs(3_600)))
        .build()
        .expect("a payer");
    let response = get(&payer, &hostile.at("/weather")).await.expect("paid");
    assert_eq!(receipt(&response).fee_msat, u64::MAX);
    let err = get(&payer, &hostile.at("/weather"))
        .await
        .expect_err("the period total is spent");
    assert_eq!(budget_limit(&err), "per-period");
    assert_eq!(wallet.pay_count(), 1);
}

/// What each wallet outcome does to the period total and to the memory of payments: a failure
/// gives the reservation back, an error keeps it (the payment may have been made), and an
/// unknown payment that the wallet later reports failed may be paid again.
#[tokio::test]
async fn wallet_outcomes_move_the_period_total_as_documented() {
    let forge = Forge::new();
    let fresh = Hostile::start(seller(forge.clone(), 10_000)).await;
    let one_payment = || Budget::default().max_per_period_msat(11_000, Duration::from_secs(3_600));

    let wallet = Oracle::new(&forge, Pays::Fail);
    let payer_a = payer()
        .wallet(wallet.clone())
        .budget(one_payment())
        .build()
        .expect("a payer");
    let err = get(&payer_a, &fresh.at("/weather"))
        .await
        .expect_err("failed");
    assert!(matches!(err, PayError::PaymentFailed { .. }), "{err}");
    assert!(!err.may_have_paid());
    wallet.set_pays(Pays::Rightly { fee_msat: 0 });
    get(&payer_a, &fresh.at("/weather"))
        .await
        .expect("the failure gave the reservation back");

    let wallet = Oracle::new(&forge, Pays::Error);
    let payer_b = payer()
        .wallet(wallet.clone())
        .budget(one_payment())
        .build()
        .expect("a payer");
    let err = get(&payer_b, &fresh.at("/weather"))
        .await
        .expect_err("unknown");
    assert!(matches!(err, PayError::Wallet { .. }), "{err}");
    wallet.set_pays(Pays::Rightly { fee_msat: 0 });
    let err = get(&payer_b, &fresh.at("/weather"))
        .await
        .expect_err("the unknown payment keeps its reservation");
    assert_eq!(budget_limit(&err), "per-period");
    assert_eq!(wallet.pay_count(), 1);

    let sticky = Hostile::start(sticky_seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::Error);
    let payer_c = payer().wallet(wallet.clone()).build().expect("a payer");
    let err = get(&payer_c, &sticky.at("/weather"))
        .await
        .expect_err("unknown");
    assert!(matches!(err, PayError::Wallet { .. }), "{err}");
    wallet.set_tracks(Tracks::Failed);
    wallet.set_pays(Pays::Rightly { fee_msat: 0 });
    let response = get(&payer_c, &sticky.at("/weather"))
        .await
        .expect("failed for good, then paid");
    assert_eq!(response.status(), 200);
    assert_eq!(wallet.pay_count(), 2);
    assert_eq!(wallet.tracks.load(Ordering::SeqCst), 1);
}

/// 16 requests at once, each for its own challenge, against a period total that holds three
/// payments: the wallet pays three times, never more.
#[tokio::test]
async fn sixteen_concurrent_challenges_against_a_period_total_for_three() {
    let forge = Forge::new();
    let hostile = Hostile::start(seller(forge.clone(), 10_000)).await;
    // Slow payments: all 16 are choosing and reserving while the first ones pay.
    let wallet =
        Oracle::new(&forge, Pays::Rightly { fee_msat: 0 }).slow(Duration::from_millis(300));
    let payer = payer()
        .wallet(wallet.clone())
        .budget(Budget::default().max_per_period_msat(33_000, Duration::from_secs(3_600)))
        .build()
        .expect("a payer");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let payer = payer.clone();
            let url = hostile.at(&format!("/item/{i}"));
            tokio::spawn(async move { get(&payer, &url).await.map(|response| response.status()) })
        })
        .collect();
    let (mut served, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("no panic") {
            Ok(status) => {
                assert_eq!(status, 200);
                served += 1;
            }
            Err(err) => {
                assert_eq!(budget_limit(&err), "per-period", "{err}");
                refused += 1;
            }
        }
    }
    assert_eq!((served, refused), (3, 13));
    assert_eq!(wallet.pay_count(), 3);
    assert_eq!(hostile.proofs().len(), 3);
}

/// The same race against the real layer and facilitator (each 402 a fresh invoice).
#[tokio::test]
async fn sixteen_concurrent_requests_to_the_real_layer_pay_three_times() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer()
        .wallet(wallet.clone())
        .budget(
            Budget::default()
                .max_per_period_msat(3 * (WEATHER_MSAT + 1_000), Duration::from_secs(3_600)),
        )
        .build()
        .expect("a payer");
    let url = format!("{}/weather", app.url);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let payer = payer.clone();
            let url = url.clone();
            tokio::spawn(async move { get(&payer, &url).await.map(|response| response.status()) })
        })
        .collect();
    let mut served = 0;
    for task in tasks {
        match task.await.expect("no panic") {
            Ok(status) => {
                assert_eq!(status, 200);
                served += 1;
            }
            Err(err) => assert_eq!(budget_limit(&err), "per-period", "{err}"),
        }
    }
    assert_eq!(served, 3);
    assert_eq!(wallet.pay_count(), 3);
}

/// The period total with a manual clock: spending is forgotten exactly one period later, not
/// a second before.
#[tokio::test]
async fn the_period_total_rolls_over_exactly_with_a_manual_clock() {
    let forge = Forge::new();
    let hostile = Hostile::start(seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let clock = ManualClock::starting_now();
    let payer = payer()
        .wallet(wallet.clone())
        .clock(Arc::new(clock.clone()))
        .budget(Budget::default().max_per_period_msat(22_000, Duration::from_secs(60)))
        .build()
        .expect("a payer");
    let url = hostile.at("/weather");
    get(&payer, &url).await.expect("the first fits");
    clock.advance(Duration::from_secs(10));
    get(&payer, &url).await.expect("the second fits");
    let err = get(&payer, &url)
        .await
        .expect_err("20,000 + 11,000 > 22,000");
    assert_eq!(budget_limit(&err), "per-period");
    // 59 s after the first payment: still within its period.
    clock.advance(Duration::from_secs(49));
    let err = get(&payer, &url)
        .await
        .expect_err("still within the period");
    assert_eq!(budget_limit(&err), "per-period");
    // 60 s after the first: it is forgotten, the second (50 s old) is not.
    clock.advance(Duration::from_secs(1));
    get(&payer, &url).await.expect("room for one again");
    let err = get(&payer, &url).await.expect_err("but for one only");
    assert_eq!(budget_limit(&err), "per-period");
    assert_eq!(wallet.pay_count(), 3);
}

/// The allow-list is about the origin the client talks to: another spelling of the same
/// machine, or an allowed origin hidden in the URL's user info, is not allowed.
#[tokio::test]
async fn an_origin_off_the_allow_list_is_not_paid_however_it_is_spelled() {
    let forge = Forge::new();
    let hostile = Hostile::start(seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let port = hostile.addr.port();
    let payer = payer()
        .wallet(wallet.clone())
        .budget(
            Budget::default()
                .allow_origin(&format!("http://localhost:{port}"))
                .expect("an origin"),
        )
        .build()
        .expect("a payer");
    let err = get(&payer, &format!("http://127.0.0.1:{port}/weather"))
        .await
        .expect_err("not that origin");
    assert_eq!(budget_limit(&err), "origin");
    let err = get(
        &payer,
        &format!("http://localhost:{port}@127.0.0.1:{port}/weather"),
    )
    .await
    .expect_err("user info is not an origin");
    assert!(!err.may_have_paid(), "{err}");
    assert_eq!(wallet.pay_count(), 0);
    assert!(hostile.proofs().is_empty());
}

/// An unknown outcome keeps its reservation (it may have been paid), but asking the wallet
/// about that same payment again is not a new payment: it must not reserve again, let alone be
/// refused by the budget.
#[tokio::test]
async fn tracking_an_unresolved_payment_does_not_spend_the_period_total() {
    let forge = Forge::new();
    let hostile = Hostile::start(sticky_seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::InFlight);
    wallet.set_tracks(Tracks::InFlight);
    let payer = payer()
        .wallet(wallet.clone())
        .budget(Budget::default().max_per_period_msat(25_000, Duration::from_secs(3_600)))
        .build()
        .expect("a payer");
    let url = hostile.at("/weather");
    for attempt in 1..=4 {
        let err = get(&payer, &url).await.expect_err("in flight");
        assert!(
            matches!(err, PayError::InFlight { .. }),
            "attempt {attempt}: {err}"
        );
    }
    assert_eq!(wallet.pay_count(), 1);
    assert_eq!(wallet.tracks.load(Ordering::SeqCst), 3);
}

/// A payment in flight that the wallet later reports paid is one payment of 10 sat: the
/// period total must count it once.
#[tokio::test]
async fn a_payment_in_flight_then_paid_counts_once_in_the_period_total() {
    let forge = Forge::new();
    let hostile = Hostile::start(sticky_seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::InFlight);
    let payer = payer()
        .wallet(wallet.clone())
        .budget(Budget::default().max_per_period_msat(25_000, Duration::from_secs(3_600)))
        .build()
        .expect("a payer");
    let url = hostile.at("/weather");
    let err = get(&payer, &url).await.expect_err("in flight");
    assert!(matches!(err, PayError::InFlight { .. }), "{err}");
    // The payment went through after all: the next try finds it paid and delivers it.
    wallet.set_tracks(Tracks::Paid);
    let response = get(&payer, &url).await.expect("delivered");
    assert_eq!(response.status(), 200);
    assert_eq!(wallet.pay_count(), 1, "tracked, not paid again");
    // 10,000 spent: another 10 sat (11,000 reserved) fits in 25,000.
    let fresh = Hostile::start(seller(forge.clone(), 10_000)).await;
    wallet.set_pays(Pays::Rightly { fee_msat: 0 });
    let response = get(&payer, &fresh.at("/weather"))
        .await
        .expect("10,000 + 11,000 <= 25,000");
    assert_eq!(response.status(), 200);
    assert_eq!(wallet.pay_count(), 2);
}

// =============================================================================================
// 2. Never twice for one challenge
// =============================================================================================

/// The paid request is answered 402 with a brand-new valid challenge (both flows): reported as
/// refused, and the new challenge is not paid.
#[tokio::test]
async fn a_402_to_the_paid_request_with_a_new_challenge_is_not_paid() {
    let forge = Forge::new();
    let minter = forge.clone();
    let hostile = Hostile::start(move |seen| {
        let (lnbtc, _) = minter.lnbtc(&Terms::get(&seen.url, 10_000));
        let (v1, _) = minter.v1(&seen.url, 10_000, 10_000);
        let mut response = challenge(Some(payment_required(&seen.url, vec![lnbtc])), vec![v1]);
        if seen.proof.is_some() {
            *response.body_mut() = Body::from(
                json!({ "x402Version": 1, "error": "pay again, please", "accepts": [] })
                    .to_string(),
            );
        }
        response
    })
    .await;
    let url = hostile.at("/weather");
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let lnbtc = payer().wallet(wallet.clone()).build().expect("a payer");
    let err = get(&lnbtc, &url).await.expect_err("refused");
    let PayError::Refused { status, reason, .. } = &err else {
        panic!("refused, not {err}");
    };
    assert_eq!((*status, reason.as_str()), (402, "pay again, please"));
    assert!(err.may_have_paid());
    assert_eq!(wallet.pay_count(), 1, "the new challenge was not paid");
    assert_eq!(hostile.proofs().len(), 1);

    let v1 = payer().account(offline_account()).build().expect("a payer");
    let err = get(&v1, &url).await.expect_err("refused");
    assert!(
        matches!(err, PayError::Refused { status: 402, .. }),
        "{err}"
    );
    assert_eq!(
        hostile.proofs().len(),
        2,
        "one authorization signed, not two"
    );
}

/// A server that serves the same challenge to every request, the paid ones included: paid
/// once, then the same proof is sent again, never a second payment.
#[tokio::test]
async fn the_same_challenge_served_forever_is_paid_once() {
    let forge = Forge::new();
    let stored: Arc<OnceLock<String>> = Arc::default();
    let minter = forge.clone();
    let hostile = Hostile::start(move |seen| {
        let header = stored.get_or_init(|| {
            let (offer, _) = minter.lnbtc(&Terms::get(&seen.url, 10_000));
            payment_required(&seen.url, vec![offer])
        });
        challenge(Some(header.clone()), vec![])
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    for _ in 0..4 {
        let err = get(&payer, &hostile.at("/weather"))
            .await
            .expect_err("refused");
        assert!(matches!(err, PayError::Refused { .. }), "{err}");
    }
    assert_eq!(wallet.pay_count(), 1);
    let proofs = hostile.proofs();
    assert_eq!(proofs.len(), 4);
    assert!(proofs.iter().all(|proof| *proof == proofs[0]), "one proof");
}

/// A server that answers 409 to every paid request: the payer tries as often as configured with
/// the same proof, pays once, and does not hang.
#[tokio::test]
async fn a_server_that_answers_409_forever_gets_the_same_proof_a_bounded_number_of_times() {
    let forge = Forge::new();
    let minter = forge.clone();
    let hostile = Hostile::start(move |seen| match &seen.proof {
        None => lnbtc_challenge(&minter, seen, 10_000),
        Some(_) => (
            StatusCode::CONFLICT,
            axum::Json(json!({ "error": "being settled" })),
        )
            .into_response(),
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let outcome = get(&payer, &hostile.at("/weather")).await;
    match &outcome {
        Ok(response) => assert_eq!(response.status(), 409),
        Err(err) => assert!(matches!(err, PayError::Undelivered { .. }), "{err}"),
    }
    assert_eq!(wallet.pay_count(), 1);
    let proofs = hostile.proofs();
    assert_eq!(proofs.len(), 3, "three tries");
    assert!(proofs.iter().all(|proof| *proof == proofs[0]), "one proof");
}

/// After every try met 409, the payment is made but its request was never served: the caller
/// must get the proof back to resend it, as for a lost request.
#[tokio::test]
async fn a_paid_request_met_by_409_on_every_try_hands_back_its_proof() {
    let forge = Forge::new();
    let minter = forge.clone();
    let hostile = Hostile::start(move |seen| match &seen.proof {
        None => lnbtc_challenge(&minter, seen, 10_000),
        Some(_) => StatusCode::CONFLICT.into_response(),
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let err = get(&payer, &hostile.at("/weather"))
        .await
        .expect_err("not served");
    let PayError::Undelivered { proof, .. } = &err else {
        panic!("undelivered with the proof, not {err}");
    };
    assert_eq!(proof.value, hostile.proofs()[0]);
}

/// The seed flow: a 409 means another request is settling the same invoice with the account's
/// authorization, so the account may be debited. The reservation must stand (outcome unknown).
#[tokio::test]
async fn a_seed_flow_payment_met_by_409_keeps_its_reservation() {
    let forge = Forge::new();
    let minter = forge.clone();
    let hostile = Hostile::start(move |seen| match &seen.proof {
        None => {
            let (v1, _) = minter.v1(&seen.url, 10_000, 10_000);
            challenge(None, vec![v1])
        }
        Some(_) => StatusCode::CONFLICT.into_response(),
    })
    .await;
    let payer = payer()
        .account(offline_account())
        .budget(Budget::default().max_per_period_msat(15_000, Duration::from_secs(3_600)))
        .build()
        .expect("a payer");
    let url = hostile.at("/weather");
    let _ = get(&payer, &url).await;
    assert_eq!(hostile.proofs().len(), 3);
    let err = get(&payer, &url)
        .await
        .expect_err("10,000 may be spent: another 10,000 exceeds 15,000");
    assert_eq!(budget_limit(&err), "per-period");
    assert_eq!(hostile.proofs().len(), 3, "no second authorization");
}

/// The seed flow through the real layer, behind a middlebox that sends the paid request twice
/// (or a server that settles the authorization itself and answers 402): the facilitator
/// debits the account for the client's authorization, the client's own try meets
/// `duplicate_settlement`. The money left the account: the period total must count it, and the
/// error must not say nothing was paid.
#[tokio::test]
async fn a_spent_seed_flow_authorization_counts_against_the_period_total() {
    let facilitator = Facilitator::start().await;
    let (listener, url) = Proxy::bind().await;
    let app = App::start(&facilitator, Some(&url)).await;
    let proxy = Proxy::start(listener, url, app.addr);
    let account = facilitator.funded_account(50_000).await;
    let payer = payer()
        .account(account.clone())
        .budget(Budget::default().max_per_period_msat(15_000, Duration::from_secs(3_600)))
        .build()
        .expect("a payer");
    let url = format!("{}/weather", proxy.url);
    let mut debited = Vec::new();
    let mut first_error = None;
    for _ in 0..3 {
        proxy.double_next.store(true, Ordering::SeqCst);
        let outcome = get(&payer, &url).await;
        let balance = account.balance("lightning-regtest").await.expect("a read");
        debited.push(50_000 - balance.balance);
        first_error.get_or_insert(outcome.err());
    }
    // A budget of 15 sat per hour allows one payment of 10 sat: the account must not lose more.
    assert_eq!(
        debited,
        [10_000, 10_000, 10_000],
        "msat debited from the account after each request"
    );
    let err = first_error
        .flatten()
        .expect("the first request was refused");
    assert!(
        err.may_have_paid(),
        "the account paid for this authorization: {err}"
    );
}

/// A wallet that says "paid" with the preimage of another invoice: no proof is built or sent,
/// the outcome is unknown (money may be gone), and the invoice is never paid again.
#[tokio::test]
async fn a_wallet_preimage_for_another_invoice_is_never_sent_nor_paid_again() {
    let forge = Forge::new();
    let hostile = Hostile::start(sticky_seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::WithAnotherPreimage);
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let url = hostile.at("/weather");
    let err = get(&payer, &url).await.expect_err("garbage");
    assert!(matches!(err, PayError::Wallet { .. }), "{err}");
    assert!(err.may_have_paid());
    let lie = hex(&wallet.lies.lock().expect("not poisoned")[0]);
    assert!(!err.to_string().contains(&lie) && !format!("{err:?}").contains(&lie));
    // Asked again: tracked, not paid.
    wallet.set_pays(Pays::Rightly { fee_msat: 0 });
    let err = get(&payer, &url).await.expect_err("unknown");
    assert!(matches!(err, PayError::InFlight { .. }), "{err}");
    assert_eq!(wallet.pay_count(), 1);
    assert!(hostile.proofs().is_empty(), "no proof ever sent");
}

/// Eight requests at once for one challenge: one payment, one served request; the others are
/// told the invoice is being paid (or, once paid, that the server spent the proof).
#[tokio::test]
async fn concurrent_requests_for_one_payable_challenge_share_one_payment() {
    let forge = Forge::new();
    let hostile = Hostile::start(sticky_seller(forge.clone(), 10_000)).await;
    let wallet =
        Oracle::new(&forge, Pays::Rightly { fee_msat: 0 }).slow(Duration::from_millis(300));
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    // Fix the challenge first.
    let _ = reqwest::get(hostile.at("/weather")).await.expect("a 402");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let payer = payer.clone();
            let url = hostile.at("/weather");
            tokio::spawn(async move { get(&payer, &url).await.map(|response| response.status()) })
        })
        .collect();
    let mut served = 0;
    for task in tasks {
        match task.await.expect("no panic") {
            Ok(status) => {
                assert_eq!(status, 200);
                served += 1;
            }
            Err(PayError::AlreadyPaying { .. } | PayError::Refused { .. }) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(served, 1);
    assert_eq!(wallet.pay_count(), 1);
}

/// A payment in flight that the wallet later reports paid: delivered with its proof on the next
/// try, not paid again.
#[tokio::test]
async fn a_payment_in_flight_that_succeeds_later_is_delivered_not_paid_again() {
    let forge = Forge::new();
    let hostile = Hostile::start(sticky_seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::InFlight);
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let url = hostile.at("/weather");
    let err = get(&payer, &url).await.expect_err("in flight");
    assert!(matches!(err, PayError::InFlight { .. }), "{err}");
    wallet.set_pays(Pays::Rightly { fee_msat: 0 });
    wallet.set_tracks(Tracks::Paid);
    let response = get(&payer, &url).await.expect("delivered");
    assert_eq!(response.status(), 200);
    assert_eq!(wallet.pay_count(), 1);
    assert_eq!(wallet.tracks.load(Ordering::SeqCst), 1);
}

/// The seed flow through the real layer: a paid request lost once is resent with the same
/// authorization, and the account pays once.
#[tokio::test]
async fn a_lost_seed_flow_request_is_resent_with_the_same_authorization() {
    let facilitator = Facilitator::start().await;
    let (listener, url) = Proxy::bind().await;
    let app = App::start(&facilitator, Some(&url)).await;
    let proxy = Proxy::start(listener, url, app.addr);
    proxy.drop_paid.store(1, Ordering::SeqCst);
    let account = facilitator.funded_account(50_000).await;
    let payer = payer().account(account.clone()).build().expect("a payer");
    let response = get(&payer, &format!("{}/weather", proxy.url))
        .await
        .expect("served on the second try");
    assert_eq!(response.status(), 200);
    let proofs = proxy.paid_requests();
    assert_eq!(proofs.len(), 2);
    assert_eq!(proofs[0], proofs[1]);
    let balance = account.balance("lightning-regtest").await.expect("a read");
    assert_eq!(balance.balance, 50_000 - WEATHER_MSAT);
}

/// A request whose body is a stream cannot be sent again with the proof: nothing is paid.
#[tokio::test]
async fn a_streamed_request_body_is_never_paid_for() {
    let forge = Forge::new();
    let hostile = Hostile::start(seller(forge.clone(), 10_000)).await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let body = reqwest::Body::wrap(http_body_util::Full::new(Bytes::from_static(b"{}")));
    let err = payer
        .client(reqwest::Client::new())
        .post(hostile.at("/echo"))
        .body(body)
        .send()
        .await
        .expect_err("not replayable");
    let err = PayError::from_middleware(&err).expect("a payment error");
    assert!(matches!(err, PayError::BodyNotReplayable), "{err}");
    assert!(!err.may_have_paid());
    assert_eq!(wallet.pay_count(), 0);
}

/// `Payer::quote` (the CLI's `--dry-run`) must judge a 402 as paying would: one reached
/// through a redirect is another URL's, and paying refuses it.
#[tokio::test]
async fn a_dry_run_quote_refuses_a_402_reached_through_a_redirect() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let payer = payer().account(offline_account()).build().expect("a payer");
    let url = format!("{}/moved", app.url);
    let err = get(&payer, &url).await.expect_err("another URL's 402");
    assert_eq!(unpayable_reason(&err), REDIRECTED);

    let http = reqwest::Client::new();
    let request = http.get(&url).build().expect("a request");
    let response = http
        .execute(request.try_clone().expect("clonable"))
        .await
        .expect("answers");
    assert_eq!(response.status(), 402);
    let err = payer
        .quote(&request, response)
        .await
        .expect_err("a dry run refuses what paying refuses");
    assert_eq!(unpayable_reason(&err), REDIRECTED);
}

// =============================================================================================
// 3. Never an offer that fails the scheme's client checks
// =============================================================================================

/// Expiries: a far-future invoice expiry that is not `maxTimeoutSeconds`, an invoice created in
/// the future, an absurd (but consistent) expiry, and a v1 invoice valid for decades.
#[tokio::test]
async fn far_future_and_inconsistent_expiries() {
    let forge = Forge::new();
    let case: Arc<Mutex<u8>> = Arc::default();
    let minter = forge.clone();
    let chosen = Arc::clone(&case);
    let decades = 30 * 365 * 24 * 3_600;
    let hostile = Hostile::start(move |seen| {
        if seen.proof.is_some() {
            return (StatusCode::OK, "paid content").into_response();
        }
        let mut terms = Terms::get(&seen.url, 10_000);
        match *chosen.lock().expect("not poisoned") {
            0 => terms.expiry = decades,
            1 => terms.created_at += Duration::from_secs(3_600),
            2 => {
                terms.expiry = decades;
                terms.max_timeout = decades;
            }
            _ => {
                let minted = minter.mint(&InvoiceSpec {
                    description: "weather".into(),
                    expiry: Duration::from_secs(decades),
                    ..InvoiceSpec::new(Network::Regtest, 10_000)
                });
                let v1 = v1_entry(&seen.url, &minter.pay_to(), 10_000, &minted.invoice);
                return challenge(None, vec![v1]);
            }
        }
        let (offer, _) = minter.lnbtc(&terms);
        challenge(Some(payment_required(&seen.url, vec![offer])), vec![])
    })
    .await;
    let url = hostile.at("/weather");
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer()
        .wallet(wallet.clone())
        .account(offline_account())
        .build()
        .expect("a payer");

    let err = get(&payer, &url)
        .await
        .expect_err("expiry != maxTimeoutSeconds");
    assert_eq!(unpayable_reason(&err), reason::INVOICE_EXPIRY_MISMATCH);
    *case.lock().expect("not poisoned") = 1;
    let err = get(&payer, &url).await.expect_err("created in an hour");
    assert_eq!(unpayable_reason(&err), reason::INVOICE_CREATED_IN_FUTURE);
    assert_eq!(wallet.pay_count(), 0);
    // Consistent, if absurd: the scheme allows it; no overflow anywhere.
    *case.lock().expect("not poisoned") = 2;
    let response = get(&payer, &url).await.expect("paid");
    assert_eq!(response.status(), 200);
    *case.lock().expect("not poisoned") = 3;
    let signer = self::payer()
        .account(offline_account())
        .build()
        .expect("a payer");
    let response = get(&signer, &url).await.expect("signed");
    assert_eq!(response.status(), 200);
}

/// The binding is recomputed from the client's own request: a challenge for another URL,
/// another body, another value of a bound header, or a resource URL that is not the request's
/// is refused before paying.
#[tokio::test]
async fn a_challenge_bound_to_anything_but_this_request_is_refused() {
    type Spoil = fn(&mut Terms);
    let spoilers: [(&str, Spoil); 4] = [
        ("another path", |terms| {
            terms.url = terms.url.replace("/echo", "/other")
        }),
        ("another body", |terms| {
            terms.body = b"{\"prompt\":\"other\"}".to_vec()
        }),
        ("another content-type", |terms| {
            terms.header_lines = vec![("content-type", "text/plain")];
        }),
        ("another query order", |terms| {
            terms.url = terms.url.replace("a=1&b=2", "b=2&a=1");
        }),
    ];
    for (what, spoil) in spoilers {
        let forge = Forge::new();
        let minter = forge.clone();
        let hostile = Hostile::start(move |seen| {
            let mut terms = Terms::get(&seen.url, 2_000);
            terms.method = "POST";
            terms.body = b"{\"prompt\":\"hello\"}".to_vec();
            terms.bound = vec!["content-type"];
            terms.header_lines = vec![("content-type", "application/json")];
            spoil(&mut terms);
            let (offer, _) = minter.lnbtc(&terms);
            // The resource URL is the request's: only the binding differs.
            challenge(Some(payment_required(&seen.url, vec![offer])), vec![])
        })
        .await;
        let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
        let payer = payer().wallet(wallet.clone()).build().expect("a payer");
        let sent = payer
            .client(reqwest::Client::new())
            .post(hostile.at("/echo?a=1&b=2"))
            .header("content-type", "application/json")
            .body("{\"prompt\":\"hello\"}")
            .send()
            .await
            .expect_err(what);
        let err = PayError::from_middleware(&sent).expect("a payment error");
        let reason = unpayable_reason(err);
        assert!(
            reason == reason::REQUEST_MISMATCH || reason == reason::INVOICE_REQUEST_MISMATCH,
            "{what}: {err}"
        );
        assert_eq!(wallet.pay_count(), 0, "{what}");
    }

    // A resource URL on another origin, with a hash recomputed for it.
    let forge = Forge::new();
    let minter = forge.clone();
    let hostile = Hostile::start(move |_seen| {
        let elsewhere = "https://bank.example/transfer";
        let (offer, _) = minter.lnbtc(&Terms::get(elsewhere, 2_000));
        challenge(Some(payment_required(elsewhere, vec![offer])), vec![])
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let err = get(&payer, &hostile.at("/weather"))
        .await
        .expect_err("another resource");
    assert_eq!(unpayable_reason(&err), reason::REQUEST_MISMATCH);
    assert_eq!(wallet.pay_count(), 0);
}

/// Hostile v1 bodies trying to have the account sign something that is not an invoice matching
/// its requirements: a withdrawal message, an invoice of another network, an expired one, one
/// for another payee, garbage amounts. Nothing is signed.
#[tokio::test]
async fn a_hostile_v1_body_gets_nothing_signed() {
    let forge = Forge::new();
    let stranger = Forge::new();
    let case: Arc<Mutex<usize>> = Arc::default();
    let (minter, other, chosen) = (forge.clone(), stranger.clone(), Arc::clone(&case));
    let hostile = Hostile::start(move |seen| {
        let valid = minter
            .mint(&InvoiceSpec::new(Network::Regtest, 10_000))
            .invoice;
        let pay_to = minter.pay_to();
        let entry = match *chosen.lock().expect("not poisoned") {
            // The message a withdrawal signs, passed off as an invoice.
            0 => v1_entry(
                &seen.url,
                &pay_to,
                10_000,
                &format!("x402-lightning withdrawal {valid} 1000"),
            ),
            // The invoice's own text with a prefix.
            1 => v1_entry(&seen.url, &pay_to, 10_000, &format!("lightning:{valid}")),
            // Mainnet invoice under regtest requirements.
            2 => {
                let mainnet = minter
                    .mint(&InvoiceSpec::new(Network::Bitcoin, 10_000))
                    .invoice;
                v1_entry(&seen.url, &pay_to, 10_000, &mainnet)
            }
            // Expired.
            3 => {
                let old = minter
                    .mint(&InvoiceSpec {
                        created_at: x402_lightning::invoice::unix_now()
                            - Duration::from_secs(7_200),
                        ..InvoiceSpec::new(Network::Regtest, 10_000)
                    })
                    .invoice;
                v1_entry(&seen.url, &pay_to, 10_000, &old)
            }
            // Signed by another node than payTo.
            4 => {
                let theirs = other
                    .mint(&InvoiceSpec::new(Network::Regtest, 10_000))
                    .invoice;
                v1_entry(&seen.url, &pay_to, 10_000, &theirs)
            }
            // A zero amount over a 10 sat invoice.
            5 => v1_entry(&seen.url, &pay_to, 0, &valid),
            // Garbage amounts and types.
            6 => {
                let mut entry = v1_entry(&seen.url, &pay_to, 10_000, &valid);
                entry["maxAmountRequired"] = json!("-10000");
                entry
            }
            7 => {
                let mut entry = v1_entry(&seen.url, &pay_to, 10_000, &valid);
                entry["maxAmountRequired"] = json!(10_000);
                entry
            }
            8 => {
                let mut entry = v1_entry(&seen.url, &pay_to, 10_000, &valid);
                entry["extra"]["invoice"] = json!({ "invoice": valid });
                entry
            }
            _ => {
                let mut entry = v1_entry(&seen.url, &pay_to, 10_000, &valid);
                entry["scheme"] = json!("upto");
                entry
            }
        };
        challenge(None, vec![entry])
    })
    .await;
    let payer = payer().account(offline_account()).build().expect("a payer");
    for attempt in 0..10 {
        *case.lock().expect("not poisoned") = attempt;
        let err = get(&payer, &hostile.at("/weather"))
            .await
            .expect_err("nothing to sign");
        assert!(
            matches!(err, PayError::Unpayable(_)),
            "case {attempt}: {err}"
        );
        assert!(
            hostile.proofs().is_empty(),
            "case {attempt}: nothing signed"
        );
    }
}

// =============================================================================================
// 4. No panic on a hostile reply; no secret in Debug output or errors
// =============================================================================================

/// `PAYMENT-REQUIRED` of 100 KB (over the client's cap) and of 1 MB (over the HTTP client's
/// header limit): nothing paid, no panic.
#[tokio::test]
async fn oversized_challenge_headers_pay_nothing() {
    let forge = Forge::new();
    let minter = forge.clone();
    let size: Arc<Mutex<usize>> = Arc::new(Mutex::new(100 * 1024));
    let chosen = Arc::clone(&size);
    let hostile = Hostile::start(move |seen| {
        let (offer, _) = minter.lnbtc(&Terms::get(&seen.url, 10_000));
        let mut required: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(payment_required(&seen.url, vec![offer]))
                .expect("base64"),
        )
        .expect("JSON");
        // Valid JSON, padded with a long description.
        let size = *chosen.lock().expect("not poisoned");
        required["resource"]["description"] = json!("x".repeat(size));
        let header =
            base64::engine::general_purpose::STANDARD.encode(required.to_string().as_bytes());
        challenge(Some(header), vec![])
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let err = get(&payer, &hostile.at("/weather"))
        .await
        .expect_err("too large to read");
    assert_eq!(unpayable_reason(&err), NO_OFFER);
    *size.lock().expect("not poisoned") = 1024 * 1024;
    let outcome = try_get(&payer, &hostile.at("/weather")).await;
    assert!(outcome.is_err(), "a 1 MB header is not a challenge");
    assert_eq!(wallet.pay_count(), 0);
}

/// A 402 whose body never ends: the payer stops reading at its cap; with a valid header the
/// offer is still read from the header and paid.
#[tokio::test]
async fn a_402_body_that_never_ends_is_not_read_forever() {
    let forge = Forge::new();
    let minter = forge.clone();
    let with_header: Arc<Mutex<bool>> = Arc::default();
    let chosen = Arc::clone(&with_header);
    let hostile = Hostile::start(move |seen| {
        if seen.proof.is_some() {
            return (StatusCode::OK, "paid content").into_response();
        }
        let mut response = Response::new(Body::new(Endless));
        *response.status_mut() = StatusCode::PAYMENT_REQUIRED;
        if *chosen.lock().expect("not poisoned") {
            let (offer, _) = minter.lnbtc(&Terms::get(&seen.url, 10_000));
            response.headers_mut().insert(
                "payment-required",
                HeaderValue::from_str(&payment_required(&seen.url, vec![offer])).expect("ok"),
            );
        }
        response
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let err = get(&payer, &hostile.at("/weather"))
        .await
        .expect_err("nothing readable");
    assert_eq!(unpayable_reason(&err), NO_OFFER);
    *with_header.lock().expect("not poisoned") = true;
    let response = get(&payer, &hostile.at("/weather")).await.expect("paid");
    assert_eq!(response.status(), 200);
    assert_eq!(wallet.pay_count(), 1);
}

/// A 402 whose body stalls forever: with the HTTP client's timeout the payer gives up reading
/// it and goes on with the header, without a panic.
#[tokio::test]
async fn a_402_body_that_stalls_is_bounded_by_the_clients_timeout() {
    let forge = Forge::new();
    let hostile = Hostile::start(stalling_seller(forge.clone())).await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("a client");
    let started = std::time::Instant::now();
    let response = get_with(&payer, client, &hostile.at("/weather"))
        .await
        .expect("paid from the header");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Without a timeout on the HTTP client (the CLI builds one without), a 402 whose body never
/// ends under 64 KiB holds the payer forever, though the v2 challenge is complete in the
/// header.
#[tokio::test]
async fn a_402_body_that_stalls_does_not_hang_the_payer() {
    let forge = Forge::new();
    let hostile = Hostile::start(stalling_seller(forge.clone())).await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    // `get` fails the test after 20 s.
    let response = get(&payer, &hostile.at("/weather"))
        .await
        .expect("paid from the header");
    assert_eq!(response.status(), 200);
}

fn stalling_seller(forge: Forge) -> impl Fn(&Seen) -> Response + Send + Sync + 'static {
    move |seen| {
        if seen.proof.is_some() {
            return (StatusCode::OK, "paid content").into_response();
        }
        let mut response = Response::new(Body::new(Stalled { sent: false }));
        *response.status_mut() = StatusCode::PAYMENT_REQUIRED;
        let (offer, _) = forge.lnbtc(&Terms::get(&seen.url, 10_000));
        response.headers_mut().insert(
            "payment-required",
            HeaderValue::from_str(&payment_required(&seen.url, vec![offer])).expect("ok"),
        );
        response
    }
}

/// Garbage in every place a challenge is read: non-UTF-8 header bytes, base64 of garbage,
/// deeply nested JSON, wrong types, 300 offers, non-UTF-8 bodies. Never a panic, never a
/// payment.
#[tokio::test]
async fn garbage_challenges_never_panic_and_pay_nothing() {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let many: Vec<Value> = (1..=300)
        .map(|i| {
            json!({ "scheme": "exact", "network": "lnbtc:nope", "amount": i.to_string(),
                    "asset": "BTC", "payTo": "x", "maxTimeoutSeconds": 1 })
        })
        .collect();
    // (what, the PAYMENT-REQUIRED header's bytes, the body)
    type Case = (&'static str, Option<Vec<u8>>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "non-UTF-8 header",
            Some(b"\xff\xfe\x80garbage".to_vec()),
            b"{}".to_vec(),
        ),
        ("not base64", Some(b"!!!!".to_vec()), b"".to_vec()),
        (
            "base64 of bytes",
            Some(b64(b"\x00\xff\x13").into_bytes()),
            b"".to_vec(),
        ),
        (
            "deep JSON header",
            Some(b64(&nested.as_bytes()[..30_000]).into_bytes()),
            b"".to_vec(),
        ),
        ("deep JSON body", None, nested.as_bytes()[..40_000].to_vec()),
        (
            "wrong types",
            Some(
                b64(json!({ "x402Version": "2", "resource": 7, "accepts": {} })
                    .to_string()
                    .as_bytes())
                .into_bytes(),
            ),
            json!({ "x402Version": 1, "accepts": "all" })
                .to_string()
                .into_bytes(),
        ),
        (
            "three hundred offers",
            Some(
                b64(
                    json!({ "x402Version": 2, "resource": { "url": "x" }, "accepts": many })
                        .to_string()
                        .as_bytes(),
                )
                .into_bytes(),
            ),
            b"".to_vec(),
        ),
        (
            "null and numbers in v1 accepts",
            None,
            json!({ "x402Version": 1, "accepts": [null, 1, "x", [], {}] })
                .to_string()
                .into_bytes(),
        ),
        (
            "non-UTF-8 body",
            None,
            b"{\"x402Version\":1,\"accepts\":[\"\xff\xfe\"]}".to_vec(),
        ),
        (
            "version 1.0",
            None,
            json!({ "x402Version": 1.0, "accepts": [] })
                .to_string()
                .into_bytes(),
        ),
    ];
    for (what, header, body) in cases {
        let forge = Forge::new();
        let (header, body) = (header.clone(), body.clone());
        let hostile = Hostile::start(move |_seen| {
            let mut response = (StatusCode::PAYMENT_REQUIRED, body.clone()).into_response();
            if let Some(header) = &header {
                response.headers_mut().insert(
                    "payment-required",
                    HeaderValue::from_bytes(header).expect("a header value"),
                );
            }
            response
        })
        .await;
        let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
        let payer = payer()
            .wallet(wallet.clone())
            .account(offline_account())
            .build()
            .expect("a payer");
        let err = get(&payer, &hostile.at("/weather")).await.expect_err(what);
        assert!(matches!(err, PayError::Unpayable(_)), "{what}: {err}");
        assert_eq!(wallet.pay_count(), 0, "{what}");
        assert!(hostile.proofs().is_empty(), "{what}");
    }
}

/// Garbage answers to the paid request: a non-UTF-8 `PAYMENT-RESPONSE`, a refusal with a huge
/// or non-JSON body, a 500. No panic; refusals reported, the rest handed over with the receipt.
#[tokio::test]
async fn garbage_answers_to_the_paid_request_never_panic() {
    let forge = Forge::new();
    let case: Arc<Mutex<u8>> = Arc::default();
    let (minter, chosen) = (forge.clone(), Arc::clone(&case));
    let hostile = Hostile::start(move |seen| {
        if seen.proof.is_none() {
            return lnbtc_challenge(&minter, seen, 10_000);
        }
        match *chosen.lock().expect("not poisoned") {
            0 => {
                let mut response = (StatusCode::OK, "paid content").into_response();
                response.headers_mut().insert(
                    "payment-response",
                    HeaderValue::from_bytes(b"\xff\xfegarbage").expect("obs-text"),
                );
                response
            }
            1 => (StatusCode::BAD_REQUEST, "x".repeat(5 * 1024 * 1024)).into_response(),
            2 => (StatusCode::PAYMENT_REQUIRED, b"\xff\xfe not json".to_vec()).into_response(),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        }
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let url = hostile.at("/weather");

    let response = get(&payer, &url).await.expect("served");
    assert_eq!(receipt(&response).settlement, None);
    *case.lock().expect("not poisoned") = 1;
    let err = get(&payer, &url).await.expect_err("refused");
    assert!(
        matches!(err, PayError::Refused { status: 400, .. }),
        "{err}"
    );
    *case.lock().expect("not poisoned") = 2;
    let err = get(&payer, &url).await.expect_err("refused");
    assert!(
        matches!(err, PayError::Refused { status: 402, .. }),
        "{err}"
    );
    *case.lock().expect("not poisoned") = 3;
    let response = get(&payer, &url).await.expect("handed over");
    assert_eq!(response.status(), 500);
    assert_eq!(receipt(&response).amount_msat, 10_000);
    assert_eq!(wallet.pay_count(), 4, "one payment per challenge");
}

/// A refusal's reason is the server's text: it reaches logs and the CLI's terminal, so it must
/// come bounded and without control characters (an escape sequence could rewrite the
/// terminal, a newline forge a line of the CLI's own).
#[tokio::test]
async fn a_refusal_reason_is_bounded_and_free_of_control_characters() {
    let forge = Forge::new();
    let minter = forge.clone();
    let hostile = Hostile::start(move |seen| {
        if seen.proof.is_none() {
            return lnbtc_challenge(&minter, seen, 10_000);
        }
        let reason = format!(
            "\u{1b}[2J\u{1b}]0;owned\u{7}\nx402-lightning: refunded, nothing was paid{}",
            "!".repeat(40_000)
        );
        let settled = json!({ "success": false, "errorReason": reason, "transaction": "",
                              "network": Network::Regtest.lnbtc_id() });
        let header = base64::engine::general_purpose::STANDARD.encode(settled.to_string());
        (
            StatusCode::PAYMENT_REQUIRED,
            [("payment-response", header)],
            "{}",
        )
            .into_response()
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet).build().expect("a payer");
    let err = get(&payer, &hostile.at("/weather"))
        .await
        .expect_err("refused");
    let PayError::Refused { reason, .. } = &err else {
        panic!("refused, not {err}");
    };
    assert!(
        !reason.chars().any(char::is_control),
        "control characters in {:?}",
        &reason[..80]
    );
    assert!(
        reason.chars().count() <= 1_000,
        "{} characters",
        reason.len()
    );
}

/// The paid request answered with a redirect to another origin: with a client that follows no
/// redirect, as `Payer::client` asks, the proof (a bearer credential for what was paid) does
/// not travel there. The LND wallet refuses redirects for
/// its macaroon for the same reason.
#[tokio::test]
async fn a_redirected_paid_request_does_not_carry_the_proof_to_another_origin() {
    let thief = Hostile::start(|_seen| (StatusCode::OK, "stolen").into_response()).await;
    let forge = Forge::new();
    let minter = forge.clone();
    let elsewhere = thief.at("/collect");
    let hostile = Hostile::start(move |seen| match &seen.proof {
        None => lnbtc_challenge(&minter, seen, 10_000),
        Some(_) => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", elsewhere.clone())],
        )
            .into_response(),
    })
    .await;
    let wallet = Oracle::new(&forge, Pays::Rightly { fee_msat: 0 });
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    // The documented way: a client that follows no redirect (reqwest's default follows ten,
    // and would carry the proof header along; the CLI never follows one).
    let client = payer.client(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client"),
    );
    let response = client
        .get(hostile.at("/weather"))
        .send()
        .await
        .expect("the redirect is the answer");
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(wallet.pay_count(), 1);
    assert_eq!(thief.proofs().len(), 0, "the proof reached another origin");
}

/// Secrets never show in Debug output or error messages: the account key, the proof of a lost
/// request (lnbtc preimage, v1 authorization).
#[tokio::test]
async fn no_secret_in_debug_output_or_error_messages() {
    let forge = Forge::new();
    let minter = forge.clone();
    let hostile = Hostile::start(move |seen| match &seen.proof {
        None => {
            let (lnbtc, _) = minter.lnbtc(&Terms::get(&seen.url, 10_000));
            let (v1, _) = minter.v1(&seen.url, 10_000, 10_000);
            challenge(Some(payment_required(&seen.url, vec![lnbtc])), vec![v1])
        }
        Some(_) => StatusCode::OK.into_response(),
    })
    .await;
    // Every paid request is lost: the errors hold the proofs.
    let (listener, url) = Proxy::bind().await;
    let proxy = Proxy::start(listener, url, hostile.addr);
    proxy.drop_paid.store(u32::MAX, Ordering::SeqCst);
    let sim = Hostile::start(sim_pay(forge.clone(), false)).await;
    let wallet = SimWallet::new(&sim.at("/pay")).expect("a URL");
    let lnbtc = payer().wallet(wallet).build().expect("a payer");
    let v1 = payer().account(offline_account()).build().expect("a payer");
    for (flow, payer) in [("lnbtc", lnbtc), ("v1", v1)] {
        let before = proxy.paid_requests().len();
        let err = get(&payer, &format!("{}/weather", proxy.url))
            .await
            .expect_err("lost");
        let PayError::Undelivered { proof, .. } = &err else {
            panic!("{flow}: undelivered, not {err}");
        };
        // The proxy lowercases what it records.
        assert!(
            proxy.paid_requests()[before].eq_ignore_ascii_case(&proof.value),
            "{flow}"
        );
        let mut secrets = vec![proof.value.clone()];
        let payment = base64::engine::general_purpose::STANDARD
            .decode(&proof.value)
            .expect("base64");
        let payment: Value = serde_json::from_slice(&payment).expect("JSON");
        if let Some(preimage) = payment["payload"]["preimage"].as_str() {
            secrets.push(preimage.to_owned());
        }
        if let Some(signature) = payment["payload"]["signature"].as_str() {
            secrets.push(signature.to_owned());
        }
        assert_eq!(secrets.len(), 2, "{flow}: {payment}");
        for shown in [format!("{err}"), format!("{err:?}"), format!("{err:#?}")] {
            for secret in &secrets {
                assert!(!shown.contains(secret.as_str()), "{flow}: {shown}");
            }
        }
        for shown in [format!("{payer:?}"), format!("{payer:#?}")] {
            assert!(!shown.contains(ACCOUNT_SECRET), "{shown}");
        }
    }
    let account = offline_account();
    assert!(!format!("{account:?}").contains(ACCOUNT_SECRET));
    assert!(!format!("{:?}", account.key()).contains(ACCOUNT_SECRET));
}

/// A node (or whatever answers at the LND URL, e.g. a proxy's error page) echoing the macaroon
/// back in its error message: the wallet's error must not carry the macaroon into logs.
#[tokio::test]
async fn an_lnd_error_echoing_the_macaroon_does_not_leak_it() {
    let macaroon = "0201036c6e6402f801030a10b3bf6906c1937139ac0684ac4417139d";
    let echo = Hostile::start(|seen| {
        let macaroon = seen
            .headers
            .get("grpc-metadata-macaroon")
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default();
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "code": 2, "message": format!("bad macaroon {macaroon}") })),
        )
            .into_response()
    })
    .await;
    let config = LndWalletConfig::new(echo.url.clone(), macaroon);
    assert!(!format!("{config:?}").contains(macaroon));
    let wallet = LndWallet::new(config).expect("a wallet");
    assert!(!format!("{wallet:?}").contains(macaroon));
    let forge = Forge::new();
    let invoice = forge
        .mint(&InvoiceSpec::new(Network::Regtest, 1_000))
        .invoice;
    let err = wallet.pay(&invoice, 1_000).await.expect_err("an error");
    assert!(
        echo.requests() >= 1,
        "the node was called (and got the macaroon)"
    );
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(macaroon), "{shown}");
}

// =============================================================================================
// 5. The CLI: exit codes, stdout and stderr (cli/src/exit.rs)
// =============================================================================================

/// The `x402-lightning` binary of this test's target directory (`cargo test` at the workspace
/// root builds it), else built once by `cargo build -p x402-lightning-cli`.
fn cli_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let this = std::env::current_exe().expect("this test's path");
            // target/<profile>/deps/client_hostile-…
            let profile_dir = this
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>")
                .to_owned();
            let binary =
                profile_dir.join(format!("x402-lightning{}", std::env::consts::EXE_SUFFIX));
            if binary.exists() {
                // `cargo test` at the workspace root built it with everything else.
                return binary;
            }
            let mut args = vec!["build", "--quiet", "-p", "x402-lightning-cli"];
            if profile_dir.ends_with("release") {
                args.push("--release");
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(&args)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "the CLI builds");
            binary
        })
        .clone()
}

/// One run of the binary.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        self
    }

    fn expect_no_stdout(&self) -> &Self {
        assert!(
            self.stdout.is_empty(),
            "stdout holds only a served body: {:?}",
            String::from_utf8_lossy(&self.stdout)
        );
        self
    }
}

/// Runs `x402-lightning ARGS` in a clean environment, without blocking the servers.
async fn cli(args: &[&str]) -> Run {
    let binary = tokio::task::spawn_blocking(cli_binary)
        .await
        .expect("the CLI is built");
    let mut command = tokio::process::Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("X402_") {
            command.env_remove(name);
        }
    }
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(name);
    }
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the CLI ends within 60 s")
        .expect("the CLI runs");
    Run {
        code: output.status.code().expect("an exit code, not a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A stand-in simulated node paying the forge's invoices (lying about the preimage when `lie`).
async fn stand_in_node(forge: &Forge, lie: bool) -> Hostile {
    Hostile::start(sim_pay(forge.clone(), lie)).await
}

async fn cli_pay(url: &str, node: &Hostile, extra: &[&str]) -> Run {
    let mut args = vec![
        "pay",
        url,
        "--wallet",
        "sim",
        "--sim-url",
        node.url.as_str(),
        "--network",
        "lightning-regtest",
    ];
    args.extend_from_slice(extra);
    cli(&args).await
}

#[tokio::test]
async fn cli_a_402_to_the_paid_request_exits_4_and_pays_once() {
    let forge = Forge::new();
    let minter = forge.clone();
    let server = Hostile::start(move |seen| {
        let mut response = lnbtc_challenge(&minter, seen, 10_000);
        if seen.proof.is_some() {
            *response.body_mut() = Body::from(r#"{"error":"duplicate_settlement"}"#);
        }
        response
    })
    .await;
    let node = stand_in_node(&forge, false).await;
    let run = cli_pay(&server.at("/weather"), &node, &[]).await;
    run.expect_code(4).expect_no_stdout();
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
    assert!(
        run.stderr.contains("duplicate_settlement"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("nothing was paid"), "{}", run.stderr);
    assert_eq!(node.requests(), 1, "paid once");
    assert_eq!(server.proofs().len(), 1);
}

#[tokio::test]
async fn cli_a_challenge_cheaper_than_its_invoice_exits_4_and_pays_nothing() {
    let forge = Forge::new();
    let minter = forge.clone();
    let server = Hostile::start(move |seen| {
        let mut terms = Terms::get(&seen.url, 1_000);
        terms.invoice_msat = 500_000;
        let (offer, _) = minter.lnbtc(&terms);
        challenge(Some(payment_required(&seen.url, vec![offer])), vec![])
    })
    .await;
    let node = stand_in_node(&forge, false).await;
    for extra in [&[][..], &["--dry-run"][..]] {
        let run = cli_pay(&server.at("/weather"), &node, extra).await;
        run.expect_code(4).expect_no_stdout();
        assert!(run.stderr.contains("nothing was paid"), "{}", run.stderr);
    }
    assert_eq!(node.requests(), 0);
    assert!(server.proofs().is_empty());
}

#[tokio::test]
async fn cli_an_origin_off_the_allow_list_exits_3() {
    let forge = Forge::new();
    let server = Hostile::start(seller(forge.clone(), 10_000)).await;
    let node = stand_in_node(&forge, false).await;
    let run = cli_pay(
        &server.at("/weather"),
        &node,
        &["--allow-origin", "https://api.example.com"],
    )
    .await;
    run.expect_code(3).expect_no_stdout();
    let run = cli_pay(&server.at("/weather"), &node, &["--max-cost", "9sat"]).await;
    run.expect_code(3).expect_no_stdout();
    assert_eq!(node.requests(), 0);
}

#[tokio::test]
async fn cli_a_paid_request_lost_for_good_exits_5_with_the_proof_on_stderr_only() {
    let forge = Forge::new();
    let server = Hostile::start(seller(forge.clone(), 10_000)).await;
    let (listener, url) = Proxy::bind().await;
    let proxy = Proxy::start(listener, url, server.addr);
    proxy.drop_paid.store(u32::MAX, Ordering::SeqCst);
    let node = stand_in_node(&forge, false).await;
    let run = cli_pay(&format!("{}/weather", proxy.url), &node, &[]).await;
    run.expect_code(5).expect_no_stdout();
    let sent = proxy.paid_requests();
    assert!(!sent.is_empty());
    assert!(
        run.stderr.to_ascii_lowercase().contains(&sent[0]),
        "the proof to resend, on stderr:\n{}",
        run.stderr
    );
    assert_eq!(node.requests(), 1, "paid once");
}

#[tokio::test]
async fn cli_a_409_on_every_try_exits_5_with_the_proof_to_resend() {
    let forge = Forge::new();
    let minter = forge.clone();
    let server = Hostile::start(move |seen| match &seen.proof {
        None => lnbtc_challenge(&minter, seen, 10_000),
        Some(_) => (StatusCode::CONFLICT, r#"{"error":"being settled"}"#).into_response(),
    })
    .await;
    let node = stand_in_node(&forge, false).await;
    let run = cli_pay(&server.at("/weather"), &node, &[]).await;
    run.expect_code(5).expect_no_stdout();
    assert!(run.stderr.contains("409"), "{}", run.stderr);
    let sent = server.proofs();
    assert_eq!(sent.len(), 3, "three tries with one proof");
    assert!(
        run.stderr.contains(&sent[0]),
        "the proof to resend, on stderr:\n{}",
        run.stderr
    );
    assert_eq!(node.requests(), 1);
}

#[tokio::test]
async fn cli_a_megabyte_challenge_pays_nothing_and_exits_5() {
    let forge = Forge::new();
    let server = Hostile::start(|_seen| {
        let mut response = challenge(None, vec![]);
        response.headers_mut().insert(
            "payment-required",
            HeaderValue::from_str(&"A".repeat(1024 * 1024)).expect("ok"),
        );
        response
    })
    .await;
    let node = stand_in_node(&forge, false).await;
    let run = cli_pay(&server.at("/weather"), &node, &[]).await;
    run.expect_code(5).expect_no_stdout();
    assert_eq!(node.requests(), 0);
}

#[tokio::test]
async fn cli_a_paid_binary_body_reaches_stdout_byte_for_byte_and_no_proof_on_stderr() {
    let forge = Forge::new();
    let minter = forge.clone();
    let body: &'static [u8] = b"\x00\xff\xfe binary \x80\r\n";
    let server = Hostile::start(move |seen| match &seen.proof {
        None => lnbtc_challenge(&minter, seen, 10_000),
        Some(_) => (StatusCode::OK, body).into_response(),
    })
    .await;
    let node = stand_in_node(&forge, false).await;
    let run = cli_pay(&server.at("/weather"), &node, &[]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, body);
    assert!(run.stderr.contains("paid"), "{}", run.stderr);
    let proof = &server.proofs()[0];
    assert!(!run.stderr.contains(proof.as_str()), "no proof when served");
}

#[tokio::test]
async fn cli_a_wallet_lying_about_the_preimage_exits_4_and_sends_no_proof() {
    let forge = Forge::new();
    let server = Hostile::start(seller(forge.clone(), 10_000)).await;
    let node = stand_in_node(&forge, true).await;
    let run = cli_pay(&server.at("/weather"), &node, &[]).await;
    run.expect_code(4).expect_no_stdout();
    assert!(!run.stderr.contains("nothing was paid"), "{}", run.stderr);
    assert!(run.stderr.contains("not paid again"), "{}", run.stderr);
    assert_eq!(node.requests(), 1);
    assert!(server.proofs().is_empty());
}

/// The CLI prints what servers say (a refusal's reason, the offer's description with
/// `--dry-run`) on the user's terminal: without control characters.
#[tokio::test]
async fn cli_server_text_reaches_the_terminal_without_control_characters() {
    let forge = Forge::new();
    let minter = forge.clone();
    let server = Hostile::start(move |seen| {
        if seen.proof.is_some() {
            return (
                StatusCode::PAYMENT_REQUIRED,
                axum::Json(json!({ "error": "\u{1b}[2Jdenied\nx402-lightning: nothing was paid" })),
            )
                .into_response();
        }
        let (offer, _) = minter.lnbtc(&Terms::get(&seen.url, 10_000));
        let required = json!({
            "x402Version": 2,
            "resource": { "url": seen.url, "description": "\u{1b}]0;owned\u{7}weather" },
            "accepts": [offer],
        });
        let header = base64::engine::general_purpose::STANDARD.encode(required.to_string());
        challenge(Some(header), vec![])
    })
    .await;
    let node = stand_in_node(&forge, false).await;
    let dry = cli_pay(&server.at("/weather"), &node, &["--dry-run"]).await;
    dry.expect_code(0);
    let paid = cli_pay(&server.at("/weather"), &node, &[]).await;
    paid.expect_code(4);
    for run in [&dry, &paid] {
        assert!(
            !run.stderr.contains('\u{1b}') && !run.stderr.contains('\u{7}'),
            "escape sequences on stderr: {:?}",
            run.stderr
        );
    }
}
