//! Adversarial tests of the `lnbtc` flow (x402 version 2, `exact` on `lnbtc`): a real axum app
//! behind the layer, driven with `tower::ServiceExt::oneshot` (and over raw TCP where hyper's
//! parsing matters), paid through the mock facilitator, or through a facilitator that lies.
//!
//! Each test tries to get priced content without a successful `/settle`, to make one proof serve
//! twice, to move a proof to another request, or to crash or hang the layer; and checks that
//! every refusal is JSON with `Cache-Control: no-store` and that payment headers never reach a
//! handler. No test sleeps: time moves with a shared `ManualClock`, concurrency is ordered with
//! `Notify`.

#[path = "common/in_process.rs"]
mod in_process;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::get;
use bitcoin::hex::DisplayHex as _;
use http::request::Parts;
use http::{Request, StatusCode};
use http_body::Frame;
use in_process::{
    Answer, GUARD, HOST, ORIGIN, Seen, app, edit_proof, get_req, handler, request,
    self_minted_proof, send_to,
};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt as _;
use x402_lightning::clock::{Clock, ManualClock};
use x402_lightning::layer::X402LayerBuilder;
use x402_lightning::lnbtc::binding::RequestHash;
use x402_lightning::lnbtc::client::IntendedRequest;
use x402_lightning::lnbtc::header::{decode_payment_required, encode_payment_signature};
use x402_lightning::lnbtc::invoice::decode;
use x402_lightning::lnbtc::reason;
use x402_lightning::lnbtc::types as v2;
use x402_lightning::mock::{Fault, InvoiceSpec, MockFacilitator, MockNode, PayError, TestWallet};
use x402_lightning::receiver::{InvoiceRequest, Receiver, ReceiverError};
use x402_lightning::{
    Facilitator, FacilitatorCall, FacilitatorError, Network, Price, PriceTag, RequirementsRequest,
    SettleRequest, SettleResponse, SupportedResponse, VerifyRequest, VerifyResponse, X402Layer,
};
/// Header lines, as the binding functions take them.
type Lines<'a> = Vec<(&'a str, &'a [u8])>;
/// The invoices a receiver minted, with their preimages.
type Preimages = Arc<Mutex<Vec<(String, [u8; 32])>>>;

const MAX_BODY: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// A facilitator that can lie about `/settle` (the other calls go to the mock, honestly).
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Mode {
    /// The mock's answer.
    Honest,
    /// `success: true` for the accepted invoice's payment hash, checking nothing, recording
    /// nothing (no replay protection at all).
    AlwaysSuccess,
    /// `success: true` naming this transaction.
    SuccessFor(String),
    /// `success: true` with the right payment hash in uppercase.
    SuccessUppercase,
    /// `success: true` on this network.
    SuccessOn(String),
    /// `success: false` with this reason and nothing else: no `transaction`, no `network`.
    BareRefusal(&'static str),
    Timeout,
    Unreachable,
    Panic,
}

#[derive(Debug)]
struct RigState {
    mode: Mutex<Mode>,
    settles: AtomicUsize,
    gated: AtomicBool,
    entered: Notify,
    release: Notify,
}

#[derive(Clone, Debug)]
struct Rigged {
    mock: MockFacilitator,
    state: Arc<RigState>,
}

impl Rigged {
    fn new(mock: MockFacilitator) -> Self {
        Self {
            mock,
            state: Arc::new(RigState {
                mode: Mutex::new(Mode::Honest),
                settles: AtomicUsize::new(0),
                gated: AtomicBool::new(false),
                entered: Notify::new(),
                release: Notify::new(),
            }),
        }
    }

    fn set(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn settles(&self) -> usize {
        self.state.settles.load(Ordering::SeqCst)
    }
}

impl Facilitator for Rigged {
    async fn requirements(
        &self,
        request: &RequirementsRequest,
    ) -> Result<x402_lightning::PaymentRequirements, FacilitatorError> {
        self.mock.requirements(request).await
    }

    async fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, FacilitatorError> {
        self.mock.verify(request).await
    }

    async fn settle(&self, request: &SettleRequest) -> Result<SettleResponse, FacilitatorError> {
        self.mock.settle(request).await
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        self.mock.supported().await
    }

    async fn settle_lnbtc(
        &self,
        request: &v2::SettleRequest,
    ) -> Result<v2::SettleResponse, FacilitatorError> {
        self.state.settles.fetch_add(1, Ordering::SeqCst);
        if self.state.gated.load(Ordering::SeqCst) {
            self.state.entered.notify_one();
            self.state.release.notified().await;
        }
        let mode = self.state.mode.lock().unwrap().clone();
        let network = self.mock.network().lnbtc_id();
        let hash = request.payment_payload["accepted"]["extra"]["invoice"]
            .as_str()
            .and_then(|text| decode(text).ok())
            .map(|invoice| invoice.payment_hash_hex())
            .unwrap_or_default();
        match mode {
            Mode::Honest => self.mock.settle_lnbtc(request).await,
            Mode::AlwaysSuccess => Ok(v2::SettleResponse::success(network, hash)),
            Mode::SuccessFor(other) => Ok(v2::SettleResponse::success(network, other)),
            Mode::SuccessUppercase => Ok(v2::SettleResponse::success(
                network,
                hash.to_ascii_uppercase(),
            )),
            Mode::SuccessOn(other) => Ok(v2::SettleResponse::success(&other, hash)),
            Mode::BareRefusal(reason) => Ok(serde_json::from_value(
                json!({ "success": false, "errorReason": reason }),
            )
            .expect("a bare refusal")),
            Mode::Timeout => Err(FacilitatorError::Timeout {
                call: FacilitatorCall::Settle,
                after: Duration::from_secs(10),
            }),
            Mode::Unreachable => Err(FacilitatorError::Unreachable {
                call: FacilitatorCall::Settle,
                source: "connection reset by peer".into(),
            }),
            Mode::Panic => panic!("a facilitator bug mid-settle"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The app: counts handler runs and payment headers seen by handlers, keeps the bodies.
// ---------------------------------------------------------------------------------------------

struct Env {
    app: Router,
    mock: MockFacilitator,
    rig: Rigged,
    clock: ManualClock,
    seen: Seen,
    wallet: TestWallet,
}

fn fresh_mock(clock: &ManualClock) -> MockFacilitator {
    MockFacilitator::builder().clock(clock.clone()).build()
}

fn env() -> Env {
    let clock = ManualClock::starting_now();
    env_on(fresh_mock(&clock), clock, true, |builder| builder)
}

fn env_with(configure: impl FnOnce(X402LayerBuilder<Rigged>) -> X402LayerBuilder<Rigged>) -> Env {
    let clock = ManualClock::starting_now();
    env_on(fresh_mock(&clock), clock, true, configure)
}

fn env_on(
    mock: MockFacilitator,
    clock: ManualClock,
    pinned: bool,
    configure: impl FnOnce(X402LayerBuilder<Rigged>) -> X402LayerBuilder<Rigged>,
) -> Env {
    let rig = Rigged::new(mock.clone());
    let mut builder = X402Layer::builder(rig.clone(), mock.network())
        .public_base_url(ORIGIN)
        .clock(clock.clone())
        .route("GET /weather", Price::sats(10))
        .route("GET /forecast", Price::sats(10))
        .route(
            "POST /ai/infer",
            PriceTag::fixed(Price::sats(20)).bind_headers(["content-type"]),
        )
        .route(
            "GET /dyn",
            PriceTag::dynamic(|head: &Parts| {
                let free = head.uri.query() == Some("free");
                async move { (!free).then(|| Price::sats(10)) }
            }),
        );
    if pinned {
        builder = builder.pay_to(mock.pay_to());
    }
    let layer = configure(builder).build().expect("layer builds");
    let seen = Seen::default();
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), 1_000_000_000);
    Env {
        app: app(layer, &seen),
        mock,
        rig,
        clock,
        seen,
        wallet,
    }
}

impl Env {
    async fn send(&self, request: Request<Body>) -> Answer {
        send_to(self.app.clone(), request).await
    }

    fn now(&self) -> u64 {
        self.clock.unix_now().as_secs()
    }

    fn runs(&self) -> usize {
        self.seen.runs()
    }

    fn calls(&self, call: FacilitatorCall) -> usize {
        self.mock.call_count(call)
    }

    /// A fresh challenge for the request.
    async fn challenge(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        headers: &[(&str, &[u8])],
    ) -> v2::PaymentRequired {
        let answer = self
            .send(request(method, target, Body::from(body.to_vec()), headers))
            .await;
        answer.challenge()
    }

    /// Pays a challenge of this request as a careful client would; the `PAYMENT-SIGNATURE`.
    async fn proof(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        headers: &[(&str, &[u8])],
    ) -> String {
        let required = self.challenge(method, target, body, headers).await;
        self.pay(&required, method, target, body, headers)
    }

    fn pay(
        &self,
        required: &v2::PaymentRequired,
        method: &str,
        target: &str,
        body: &[u8],
        headers: &[(&str, &[u8])],
    ) -> String {
        let url = format!("{ORIGIN}{target}");
        let intended = IntendedRequest::Http {
            method,
            url: &url,
            body,
            header_lines: headers,
        };
        self.wallet
            .pay_lnbtc(&self.mock, required, &intended, self.now())
            .expect("the challenge passes the client's checks and is paid")
    }

    async fn weather_proof(&self) -> String {
        self.proof("GET", "/weather", b"", &[]).await
    }
}

// =============================================================================================
// 1. Priced content without a successful /settle.
// =============================================================================================

#[tokio::test]
async fn settle_faults_serve_nothing_answer_json_and_leave_the_proof_usable() {
    let env = env();
    let proof = env.weather_proof().await;

    env.mock
        .fail_next(FacilitatorCall::Settle, Fault::SettleFailed("nope".into()));
    let refused = env.send(get_req("/weather", Some(&proof))).await;
    refused.assert_402("nope");
    let settlement = refused
        .settlement()
        .expect("the failed settlement is shown");
    assert!(!settlement.success);

    for (fault, status) in [
        (
            Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
            StatusCode::BAD_GATEWAY,
        ),
        (
            Fault::Status(StatusCode::NOT_FOUND),
            StatusCode::BAD_GATEWAY,
        ),
        (Fault::Status(StatusCode::OK), StatusCode::BAD_GATEWAY),
        (Fault::Garbage, StatusCode::BAD_GATEWAY),
    ] {
        env.mock.fail_next(FacilitatorCall::Settle, fault.clone());
        let answer = env.send(get_req("/weather", Some(&proof))).await;
        assert_eq!(answer.status, status, "{fault:?}: {answer:?}");
        answer.assert_refusal();
        assert!(answer.settlement().is_none(), "{fault:?}");
    }
    for (mode, status) in [
        (Mode::Timeout, StatusCode::GATEWAY_TIMEOUT),
        (Mode::Unreachable, StatusCode::BAD_GATEWAY),
    ] {
        env.rig.set(mode.clone());
        let answer = env.send(get_req("/weather", Some(&proof))).await;
        assert_eq!(answer.status, status, "{mode:?}: {answer:?}");
        answer.assert_refusal();
    }
    assert_eq!(env.runs(), 0);
    assert_eq!(
        env.calls(FacilitatorCall::Verify),
        0,
        "lnbtc never verifies"
    );

    // None of them consumed the proof.
    env.rig.set(Mode::Honest);
    let paid = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert!(paid.settlement().expect("PAYMENT-RESPONSE").success);
    assert_eq!(env.runs(), 1);
}

#[tokio::test]
async fn a_settle_success_for_another_hash_network_or_spelling_serves_nothing() {
    let env = env();
    let mainnet = Network::Bitcoin.lnbtc_id().to_owned();
    for mode in [
        Mode::SuccessFor("00".repeat(32)),
        Mode::SuccessFor(String::new()),
        Mode::SuccessUppercase,
        Mode::SuccessOn(mainnet),
        Mode::SuccessOn(Network::Regtest.lnbtc_id().to_ascii_uppercase()),
    ] {
        env.rig.set(Mode::Honest);
        let proof = env.weather_proof().await;
        env.rig.set(mode.clone());
        let answer = env.send(get_req("/weather", Some(&proof))).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "{mode:?}: {answer:?}"
        );
        answer.assert_refusal();
        assert_eq!(env.runs(), 0, "{mode:?}");
        // Nor on a retry through the same lying facilitator.
        let again = env.send(get_req("/weather", Some(&proof))).await;
        assert_ne!(again.status, StatusCode::OK, "{mode:?}: {again:?}");
        again.assert_refusal();
        assert_eq!(env.runs(), 0, "{mode:?}");
    }
}

#[tokio::test]
async fn a_refused_settle_is_told_in_full_though_the_facilitator_left_fields_out() {
    let env = env();
    let proof = env.weather_proof().await;
    env.rig.set(Mode::BareRefusal("duplicate_settlement"));
    let answer = env.send(get_req("/weather", Some(&proof))).await;
    answer.assert_402("duplicate_settlement");
    let settlement = answer.settlement().expect("PAYMENT-RESPONSE");
    assert!(!settlement.success);
    assert_eq!(
        settlement.error_reason.as_deref(),
        Some("duplicate_settlement")
    );
    assert_eq!(settlement.transaction, "");
    assert_eq!(settlement.network, Network::Regtest.lnbtc_id());
    // On the wire: every member named, `transaction` empty rather than absent.
    let header = answer.headers["payment-response"].as_bytes();
    let raw: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, header)
            .expect("base64"),
    )
    .expect("JSON");
    assert_eq!(
        raw,
        json!({
            "success": false,
            "errorReason": "duplicate_settlement",
            "transaction": "",
            "network": Network::Regtest.lnbtc_id(),
        })
    );
    assert_eq!(env.runs(), 0);
}

#[tokio::test]
async fn a_facilitator_that_says_success_without_checking_cannot_sell_forged_proofs() {
    let env = env();
    let required = env.challenge("GET", "/weather", b"", &[]).await;
    let proof = env.pay(&required, "GET", "/weather", b"", &[]);
    env.rig.set(Mode::AlwaysSuccess);

    let attacker = MockNode::random();
    let forged = [
        (
            reason::PREIMAGE_HASH_MISMATCH,
            edit_proof(&proof, |p| {
                p["payload"]["preimage"] = json!("11".repeat(32))
            }),
        ),
        (
            reason::PAY_TO_MISMATCH,
            self_minted_proof(
                &required,
                &attacker,
                Some(attacker.pay_to().to_string()),
                &env.clock,
            ),
        ),
        (
            reason::INVOICE_PAYEE_MISMATCH,
            self_minted_proof(&required, &attacker, None, &env.clock),
        ),
    ];
    for (expected, forged) in &forged {
        env.send(get_req("/weather", Some(forged)))
            .await
            .assert_402(expected);
    }
    // An unpaid invoice of this very layer, with a guessed preimage.
    let unpaid = env.challenge("GET", "/weather", b"", &[]).await;
    let guessed = encode_payment_signature(&v2::PaymentPayload::lnbtc(
        Some(unpaid.resource.clone()),
        unpaid.accepts[0].clone(),
        "22".repeat(32),
    ));
    env.send(get_req("/weather", Some(&guessed)))
        .await
        .assert_402(reason::PREIMAGE_HASH_MISMATCH);
    // A paid proof of another route at the same price.
    let forecast = env.proof("GET", "/forecast", b"", &[]).await;
    env.send(get_req("/weather", Some(&forecast)))
        .await
        .assert_402(reason::REQUEST_MISMATCH);
    assert_eq!(env.rig.settles(), 0, "nothing forged reached /settle");
    assert_eq!(env.runs(), 0);

    // A real proof, replayed through a facilitator without a replay store: once only.
    let first = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    env.send(get_req("/weather", Some(&proof)))
        .await
        .assert_402(reason::DUPLICATE_SETTLEMENT);
    assert_eq!(env.rig.settles(), 1);
    assert_eq!(env.runs(), 1);
}

#[tokio::test]
async fn an_unpinned_layer_never_takes_a_payee_the_client_chose() {
    let clock = ManualClock::starting_now();
    let env = env_on(fresh_mock(&clock), clock, false, |builder| builder);
    env.rig.set(Mode::AlwaysSuccess);
    // Without a challenge first, the layer knows no payee yet.
    let required = env.challenge("GET", "/weather", b"", &[]).await;
    let attacker = MockNode::random();
    let forged = self_minted_proof(
        &required,
        &attacker,
        Some(attacker.pay_to().to_string()),
        &env.clock,
    );
    env.send(get_req("/weather", Some(&forged)))
        .await
        .assert_402(reason::PAY_TO_MISMATCH);
    assert_eq!(env.rig.settles(), 0);
    assert_eq!(env.runs(), 0);
    // The honest payee still works.
    let proof = env.pay(&required, "GET", "/weather", b"", &[]);
    assert_eq!(
        env.send(get_req("/weather", Some(&proof))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_settle_that_panics_is_a_502_and_releases_the_payment_hash() {
    let env = env();
    let proof = env.weather_proof().await;
    env.rig.set(Mode::Panic);
    let answer = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{answer:?}");
    answer.assert_refusal();
    assert_eq!(env.runs(), 0);
    env.rig.set(Mode::Honest);
    let paid = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK, "not stuck in flight: {paid:?}");
    assert_eq!(env.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_mid_settle_consumes_the_proof_once_and_runs_nothing() {
    let env = env();
    let proof = env.weather_proof().await;
    env.rig.state.gated.store(true, Ordering::SeqCst);
    let app = env.app.clone();
    let request = get_req("/weather", Some(&proof));
    let hanging = tokio::spawn(async move { app.oneshot(request).await });
    tokio::time::timeout(GUARD, env.rig.state.entered.notified())
        .await
        .expect("the settle started");
    hanging.abort();
    let _ = hanging.await;
    env.rig.state.gated.store(false, Ordering::SeqCst);
    env.rig.state.release.notify_one();

    // The detached settle finishes on its own; until it does the hash is in flight.
    let mut retry = env.send(get_req("/weather", Some(&proof))).await;
    let mut spins = 0;
    while retry.status == StatusCode::CONFLICT && spins < 10_000 {
        retry.assert_refusal();
        tokio::task::yield_now().await;
        retry = env.send(get_req("/weather", Some(&proof))).await;
        spins += 1;
    }
    retry.assert_402(reason::DUPLICATE_SETTLEMENT);
    assert_eq!(env.runs(), 0);
    assert_eq!(env.calls(FacilitatorCall::Settle), 1);
}

// =============================================================================================
// 2. One proof, served twice?
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_proof_raced_by_32_requests_settles_once_without_a_facilitator_replay_store() {
    let env = env();
    let proof = Arc::new(env.weather_proof().await);
    env.rig.set(Mode::AlwaysSuccess);
    env.rig.state.gated.store(true, Ordering::SeqCst);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..32 {
        let (app, proof, tx) = (env.app.clone(), Arc::clone(&proof), tx.clone());
        tokio::spawn(async move {
            let answer = send_to(app, get_req("/weather", Some(&proof))).await;
            let _ = tx.send(answer);
        });
    }
    tokio::time::timeout(GUARD, env.rig.state.entered.notified())
        .await
        .expect("one settle started");
    // While that settle is held, every other racer must already be answered.
    for index in 0..31 {
        let answer = tokio::time::timeout(GUARD, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("racer {index} still waiting: a second settle?"))
            .expect("answer");
        assert_eq!(answer.status, StatusCode::CONFLICT, "{answer:?}");
        answer.assert_refusal();
    }
    env.rig.state.gated.store(false, Ordering::SeqCst);
    env.rig.state.release.notify_one();
    let winner = tokio::time::timeout(GUARD, rx.recv())
        .await
        .expect("the winner")
        .expect("answer");
    assert_eq!(winner.status, StatusCode::OK, "{winner:?}");
    env.send(get_req("/weather", Some(&proof)))
        .await
        .assert_402(reason::DUPLICATE_SETTLEMENT);
    assert_eq!(env.rig.settles(), 1);
    assert_eq!(env.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_layers_sharing_one_mock_serve_a_proof_once() {
    let clock = ManualClock::starting_now();
    let mock = fresh_mock(&clock);
    let one = env_on(mock.clone(), clock.clone(), true, |builder| builder);
    let two = env_on(mock.clone(), clock, true, |builder| builder);
    let proof = Arc::new(one.weather_proof().await);

    let mut racers = Vec::new();
    for index in 0..32 {
        let app = if index % 2 == 0 {
            one.app.clone()
        } else {
            two.app.clone()
        };
        let proof = Arc::clone(&proof);
        racers.push(tokio::spawn(async move {
            send_to(app, get_req("/weather", Some(&proof))).await
        }));
    }
    let mut served = 0;
    for racer in racers {
        let answer = racer.await.expect("racer");
        match answer.status {
            StatusCode::OK => served += 1,
            StatusCode::CONFLICT => answer.assert_refusal(),
            StatusCode::PAYMENT_REQUIRED => answer.assert_402(reason::DUPLICATE_SETTLEMENT),
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!(served, 1);
    assert_eq!(one.runs() + two.runs(), 1);
    let successes = mock
        .calls_to(FacilitatorCall::Settle)
        .iter()
        .filter(|call| call.response()["success"] == true)
        .count();
    assert_eq!(successes, 1);
}

#[tokio::test]
async fn a_proof_sent_as_x_payment_is_malformed_and_stays_usable() {
    let env = env();
    let proof = env.weather_proof().await;
    let answer = env
        .send(request(
            "GET",
            "/weather",
            Body::empty(),
            &[("x-payment", proof.as_bytes())],
        ))
        .await;
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{answer:?}");
    answer.assert_refusal();
    assert!(
        answer
            .error()
            .starts_with("Invalid or malformed payment header"),
        "{answer:?}"
    );
    // And as both headers at once.
    let both = env
        .send(request(
            "GET",
            "/weather",
            Body::empty(),
            &[
                ("x-payment", proof.as_bytes()),
                ("payment-signature", proof.as_bytes()),
            ],
        ))
        .await;
    assert_eq!(both.status, StatusCode::PAYMENT_REQUIRED);
    both.assert_refusal();
    assert_eq!(env.calls(FacilitatorCall::Verify), 0);
    assert_eq!(env.calls(FacilitatorCall::Settle), 0);
    assert_eq!(env.runs(), 0);
    let paid = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK);
}

#[tokio::test]
async fn an_invoice_paid_over_lightning_is_never_charged_or_served_through_x_payment() {
    let env = env();
    let answer = env.send(get_req("/weather", None)).await;
    let required = answer.challenge();
    let v1: x402_lightning::PaymentRequired = serde_json::from_slice(&answer.body).expect("v1");
    let proof = env.pay(&required, "GET", "/weather", b"", &[]);
    let balance = env.mock.balance(env.wallet.public_key());

    // Paid over Lightning, then authorized through the seed flow too: refused, not charged.
    let x_payment = env.wallet.pay(&v1.accepts[0]);
    let v1_answer = env
        .send(request(
            "GET",
            "/weather",
            Body::empty(),
            &[("x-payment", x_payment.as_bytes())],
        ))
        .await;
    assert_eq!(
        v1_answer.status,
        StatusCode::PAYMENT_REQUIRED,
        "{v1_answer:?}"
    );
    v1_answer.assert_refusal();
    assert_eq!(env.runs(), 0);

    let paid = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK);
    let again = env
        .send(request(
            "GET",
            "/weather",
            Body::empty(),
            &[("x-payment", x_payment.as_bytes())],
        ))
        .await;
    assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED, "{again:?}");
    again.assert_refusal();
    assert_eq!(env.runs(), 1);
    assert_eq!(env.mock.balance(env.wallet.public_key()), balance);
}

#[tokio::test]
async fn an_invoice_settled_through_x_payment_cannot_be_proven_with_payment_signature() {
    let env = env();
    let answer = env.send(get_req("/weather", None)).await;
    let required = answer.challenge();
    let v1: x402_lightning::PaymentRequired = serde_json::from_slice(&answer.body).expect("v1");
    let invoice = required.accepts[0].invoice().expect("invoice").to_owned();
    assert_eq!(v1.accepts[0].extra.invoice, invoice, "one invoice per 402");

    let x_payment = env.wallet.pay(&v1.accepts[0]);
    let paid = env
        .send(request(
            "GET",
            "/weather",
            Body::empty(),
            &[("x-payment", x_payment.as_bytes())],
        ))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(env.runs(), 1);
    assert_eq!(env.mock.pay_invoice(&invoice), Err(PayError::AlreadyPaid));

    // Even through a facilitator that checks nothing, a guessed preimage buys nothing.
    env.rig.set(Mode::AlwaysSuccess);
    let guessed = encode_payment_signature(&v2::PaymentPayload::lnbtc(
        Some(required.resource.clone()),
        required.accepts[0].clone(),
        "33".repeat(32),
    ));
    env.send(get_req("/weather", Some(&guessed)))
        .await
        .assert_402(reason::PREIMAGE_HASH_MISMATCH);
    assert_eq!(env.rig.settles(), 0);
    assert_eq!(env.runs(), 1);
}

// =============================================================================================
// 3. A proof for one request used on another.
// =============================================================================================

#[tokio::test]
async fn a_proof_never_buys_another_request() {
    let env = env();
    let proof = env.proof("GET", "/weather?city=paris", b"", &[]).await;
    let with = |method: &str, target: &str, body: &'static [u8]| {
        request(
            method,
            target,
            Body::from(body),
            &[("payment-signature", proof.as_bytes())],
        )
    };
    for (method, target, body) in [
        ("GET", "/weather?city=rome", &b""[..]),
        ("GET", "/weather?city=%70aris", b""),
        ("GET", "/weather?city=paris&", b""),
        ("GET", "/weather?city=paris&city=paris", b""),
        ("GET", "/weather?CITY=paris", b""),
        ("GET", "/weather?", b""),
        ("GET", "/weather", b""),
        ("GET", "/forecast?city=paris", b""),
        ("HEAD", "/weather?city=paris", b""),
        ("GET", "/weather?city=paris", b"x"),
        ("GET", "http://shop.example/weather?city=rome", b""),
    ] {
        let answer = env.send(with(method, target, body)).await;
        assert_eq!(
            answer.status,
            StatusCode::PAYMENT_REQUIRED,
            "{method} {target}: {answer:?}"
        );
        if method != "HEAD" {
            answer.assert_402(reason::REQUEST_MISMATCH);
        }
    }
    // Paths the price table and the router both leave unserved.
    for (method, target) in [
        ("GET", "/%77eather?city=paris"),
        ("GET", "/weather/?city=paris"),
        ("GET", "//weather?city=paris"),
        ("GET", "/Weather?city=paris"),
        ("POST", "/weather?city=paris"),
    ] {
        let answer = env.send(with(method, target, b"")).await;
        assert_ne!(answer.status, StatusCode::OK, "{method} {target}");
    }
    assert_eq!(env.calls(FacilitatorCall::Settle), 0);
    assert_eq!(env.runs(), 0);
    let own = env.send(with("GET", "/weather?city=paris", b"")).await;
    assert_eq!(own.status, StatusCode::OK, "{own:?}");
    assert_eq!(env.runs(), 1);
}

#[tokio::test]
async fn a_post_proof_is_bound_to_its_exact_body_and_content_type() {
    let env = env();
    let body = br#"{"prompt":"hello lightning"}"#;
    let json_type: (&str, &[u8]) = ("content-type", b"application/json");
    let proof = env.proof("POST", "/ai/infer", body, &[json_type]).await;
    let signature: (&str, &[u8]) = ("payment-signature", proof.as_bytes());
    let cases: Vec<(Vec<u8>, Lines<'_>)> = vec![
        (
            br#"{"prompt":"hello lightning"} "#.to_vec(),
            vec![json_type, signature],
        ),
        (
            br#"{"prompt": "hello lightning"}"#.to_vec(),
            vec![json_type, signature],
        ),
        (Vec::new(), vec![json_type, signature]),
        (
            body.to_vec(),
            vec![
                ("content-type", b"application/json; charset=utf-8"),
                signature,
            ],
        ),
        (
            body.to_vec(),
            vec![("content-type", b"Application/JSON"), signature],
        ),
        (body.to_vec(), vec![signature]),
        (body.to_vec(), vec![json_type, json_type, signature]),
        (
            body.to_vec(),
            vec![json_type, ("content-type", b""), signature],
        ),
    ];
    for (bytes, headers) in cases {
        let answer = env
            .send(request(
                "POST",
                "/ai/infer",
                Body::from(bytes.clone()),
                &headers,
            ))
            .await;
        answer.assert_402(reason::REQUEST_MISMATCH);
    }
    // Leading/trailing whitespace is not part of a field value (RFC 9421 §2.1): same request.
    assert_eq!(env.calls(FacilitatorCall::Settle), 0);
    assert_eq!(env.runs(), 0);
    let paid = env
        .send(request(
            "POST",
            "/ai/infer",
            Body::from(body.to_vec()),
            &[json_type, signature],
        ))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(
        env.seen.bodies().last().map(|b| b.to_vec()),
        Some(body.to_vec()),
        "the handler gets the bytes paid for"
    );
}

#[tokio::test]
async fn absolute_form_targets_and_forwarded_hosts_never_rebind_the_origin() {
    let env = env();
    let proof = env.weather_proof().await;
    let signature: (&str, &[u8]) = ("payment-signature", proof.as_bytes());
    let mints = env.calls(FacilitatorCall::Requirements);
    for (target, headers) in [
        ("http://evil.example/weather", vec![signature]),
        (
            "http://shop.example/weather",
            vec![("x-forwarded-host", &b"evil.example"[..]), signature],
        ),
        (
            "/weather",
            vec![
                ("x-forwarded-host", &b"evil.example/weather?x=1"[..]),
                signature,
            ],
        ),
        (
            "/weather",
            vec![("x-forwarded-host", &b"user@shop.example"[..]), signature],
        ),
        (
            "/weather",
            vec![("x-forwarded-proto", &b"https/evil"[..]), signature],
        ),
    ] {
        let answer = env
            .send(request("GET", target, Body::empty(), &headers))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{target}: {answer:?}"
        );
        answer.assert_refusal();
        assert!(
            answer.error().starts_with("invalid_exact_lnbtc_request_"),
            "{answer:?}"
        );
    }
    // A Host that smuggles a target, or two Hosts.
    for hosts in [
        vec!["shop.example/weather?x=1"],
        vec!["shop.example", "evil.example"],
    ] {
        let mut builder = Request::builder().method("GET").uri("/weather");
        for host in hosts {
            builder = builder.header("host", host);
        }
        let answer = env
            .send(
                builder
                    .header("payment-signature", &proof)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
        answer.assert_refusal();
    }
    assert_eq!(env.calls(FacilitatorCall::Requirements), mints, "no mint");
    assert_eq!(env.calls(FacilitatorCall::Settle), 0);
    assert_eq!(env.runs(), 0);
    // The configured origin, in absolute form, is the same request.
    let paid = env
        .send(request(
            "GET",
            "http://shop.example/weather",
            Body::empty(),
            &[signature],
        ))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
}

// =============================================================================================
// 4. Crash or hang it.
// =============================================================================================

#[tokio::test]
async fn hostile_payment_signature_values_get_a_clean_400_or_402() {
    let env = env();
    let proof = env.weather_proof().await;
    let b64 = |json: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(json)
    };
    let deep = format!(
        r#"{{"x402Version":2,"accepted":{}1{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let deep_object = format!(
        r#"{{"x402Version":2,"accepted":{}{}}}"#,
        r#"{"a":"#.repeat(200),
        "}".repeat(200)
    );
    let values: Vec<Vec<u8>> = vec![
        b"%%%".to_vec(),
        b"".to_vec(),
        b"=".to_vec(),
        b64("null").into_bytes(),
        b64("[]").into_bytes(),
        b64("2").into_bytes(),
        b64(r#""x402Version""#).into_bytes(),
        b64("{}").into_bytes(),
        b64(r#"{"x402Version":2}"#).into_bytes(),
        b64(r#"{"x402Version":2.0}"#).into_bytes(),
        b64(r#"{"x402Version":"2"}"#).into_bytes(),
        b64(r#"{"x402Version":2e400}"#).into_bytes(),
        b64(r#"{"x402Version":18446744073709551618}"#).into_bytes(),
        b64(r#"{"x402Version":-2}"#).into_bytes(),
        b64(r#"{"x402Version":2,"accepted":[]}"#).into_bytes(),
        b64(r#"{"x402Version":2,"accepted":"exact"}"#).into_bytes(),
        b64(r#"{"x402Version":2,"accepted":null}"#).into_bytes(),
        b64(r#"{"x402Version":2,"accepted":{"scheme":["exact"]}}"#).into_bytes(),
        b64(&deep).into_bytes(),
        b64(&deep_object).into_bytes(),
        b64("{\"x402Version\":2,\"accepted\":\"\\ud800\"}").into_bytes(),
        {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .encode([0xff, 0xfe, b'{', 0x80, b'}'])
                .into_bytes()
        },
        vec![b'e', b'y', 0x80, 0xff, b'J', b'9'],
        "A".repeat(9000).into_bytes(),
    ];
    // Not a usable x402 version 2 payment for `exact` on this network: a 400 with the
    // vocabulary's reason and no fresh invoice.
    for value in &values {
        let answer = env
            .send(request(
                "GET",
                "/weather",
                Body::empty(),
                &[("payment-signature", value)],
            ))
            .await;
        let shown = String::from_utf8_lossy(&value[..value.len().min(60)]).into_owned();
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{shown}: {answer:?}"
        );
        answer.assert_refusal();
        assert!(!answer.headers.contains_key("payment-required"), "{shown}");
    }
    // A valid proof with each core field replaced by an oddity: the scheme's checks refuse it
    // with a fresh challenge.
    let mut values = Vec::new();
    for (pointer, value) in [
        ("/accepted/amount", json!(1e308)),
        (
            "/accepted/amount",
            json!(18446744073709551616u128.to_string()),
        ),
        ("/accepted/maxTimeoutSeconds", json!(1e308)),
        ("/accepted/maxTimeoutSeconds", json!(-60)),
        ("/accepted/maxTimeoutSeconds", json!(60.0)),
        ("/accepted/extra", json!([1, 2, 3])),
        ("/accepted/extra/invoice", json!({"nested": "object"})),
        (
            "/accepted/extra/requestBindingParams",
            json!({"headers": ["Host"]}),
        ),
        ("/payload", json!([])),
        ("/payload/preimage", json!(["00"])),
        // Long, yet under the header limit: the scheme's checks judge it.
        ("/payload/preimage", json!("0".repeat(2000))),
    ] {
        values.push(
            edit_proof(&proof, |payment| {
                *payment.pointer_mut(pointer).expect("member") = value.clone();
            })
            .into_bytes(),
        );
    }
    for value in &values {
        let answer = env
            .send(request(
                "GET",
                "/weather",
                Body::empty(),
                &[("payment-signature", value)],
            ))
            .await;
        let shown = String::from_utf8_lossy(&value[..value.len().min(60)]).into_owned();
        assert_eq!(
            answer.status,
            StatusCode::PAYMENT_REQUIRED,
            "{shown}: {answer:?}"
        );
        answer.assert_refusal();
        let _ = answer.challenge();
    }
    // Many PAYMENT-SIGNATURE lines, each a copy of the valid proof.
    let many: Vec<(&str, &[u8])> = (0..64)
        .map(|_| ("payment-signature", proof.as_bytes()))
        .collect();
    let answer = env
        .send(request("GET", "/weather", Body::empty(), &many))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    answer.assert_refusal();
    assert!(answer.error().contains("more than one"), "{answer:?}");

    assert_eq!(env.calls(FacilitatorCall::Settle), 0);
    assert_eq!(env.runs(), 0);
    // The layer is still fine, and the untouched proof unspent.
    let paid = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
}

#[tokio::test]
async fn junk_nested_inside_a_valid_proof_neither_crashes_nor_serves_twice() {
    let env = env();
    let proof = env.weather_proof().await;
    for depth in [100usize, 124, 125, 126] {
        let nested: Value =
            serde_json::from_str(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)))
                .unwrap_or(Value::Null);
        let junk = edit_proof(&proof, |payment| {
            payment["accepted"]["extra"]["junk"] = nested.clone();
        });
        let before = env.runs();
        let answer = env.send(get_req("/weather", Some(&junk))).await;
        match answer.status {
            StatusCode::OK => assert_eq!(env.runs(), before + 1),
            _ => {
                answer.assert_refusal();
                assert_eq!(env.runs(), before, "depth {depth}");
            }
        }
    }
    assert!(env.runs() <= 1, "one proof, at most one run");
    let last = env.send(get_req("/weather", Some(&proof))).await;
    if env.runs() == 0 {
        assert_eq!(last.status, StatusCode::OK, "{last:?}");
    } else {
        last.assert_402(reason::DUPLICATE_SETTLEMENT);
    }
    assert_eq!(env.runs(), 1);
}

/// A body yielding these frames, then the end (or an error in their place).
struct Frames(VecDeque<Result<Bytes, io::Error>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(self.0.pop_front().map(|frame| frame.map(Frame::data)))
    }
}

fn chunked(total: usize, chunk: usize) -> Body {
    let mut frames = VecDeque::new();
    let mut left = total;
    while left > 0 {
        let size = left.min(chunk);
        frames.push_back(Ok(Bytes::from(vec![b'x'; size])));
        left -= size;
    }
    Body::new(Frames(frames))
}

#[tokio::test]
async fn bodies_at_and_over_the_limit() {
    let env = env();
    let json_type: (&str, &[u8]) = ("content-type", b"application/json");
    let exact = vec![b'x'; MAX_BODY];
    let length = MAX_BODY.to_string();
    let over_length = (MAX_BODY + 1).to_string();

    // Exactly at the limit: a challenge, and paid, the handler gets every byte.
    let proof = env.proof("POST", "/ai/infer", &exact, &[json_type]).await;
    let paid = env
        .send(request(
            "POST",
            "/ai/infer",
            chunked(MAX_BODY, 7919),
            &[json_type, ("payment-signature", proof.as_bytes())],
        ))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(paid.json()["len"], MAX_BODY);
    let mints = env.calls(FacilitatorCall::Requirements);

    let over: Vec<(&str, Body, Lines<'_>)> = vec![
        (
            "declared and sent",
            Body::from(vec![b'x'; MAX_BODY + 1]),
            vec![json_type, ("content-length", over_length.as_bytes())],
        ),
        ("chunked", chunked(MAX_BODY + 1, 65_536), vec![json_type]),
        (
            "declared small, sent big",
            chunked(MAX_BODY + 1, 1 << 20),
            vec![json_type, ("content-length", b"10")],
        ),
        (
            "declared big, sent nothing",
            Body::empty(),
            vec![json_type, ("content-length", over_length.as_bytes())],
        ),
        (
            "declared absurdly big",
            Body::empty(),
            vec![json_type, ("content-length", b"99999999999999999999")],
        ),
    ];
    for (what, body, headers) in over {
        let mut headers = headers;
        headers.push(("payment-signature", proof.as_bytes()));
        let answer = env.send(request("POST", "/ai/infer", body, &headers)).await;
        if what == "declared absurdly big" {
            // Not a u64: the declaration is ignored and the (empty) body read.
            assert_ne!(answer.status, StatusCode::OK, "{what}");
            continue;
        }
        assert_eq!(
            answer.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{what}: {answer:?}"
        );
        answer.assert_refusal();
    }
    // Exactly at the limit with Content-Length: read, not refused.
    let at = env
        .send(request(
            "POST",
            "/ai/infer",
            Body::from(exact),
            &[json_type, ("content-length", length.as_bytes())],
        ))
        .await;
    assert_eq!(at.status, StatusCode::PAYMENT_REQUIRED, "{at:?}");
    assert_eq!(env.calls(FacilitatorCall::Requirements), mints + 2);
    assert_eq!(env.runs(), 1);
}

#[tokio::test]
async fn a_body_that_fails_mid_stream_is_a_400_and_mints_nothing() {
    let env = env();
    let json_type: (&str, &[u8]) = ("content-type", b"application/json");
    for frames in [
        vec![
            Ok(Bytes::from_static(b"{\"prompt\":")),
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer gone")),
        ],
        vec![Err(io::Error::other("at once"))],
    ] {
        let body = Body::new(Frames(frames.into_iter().collect()));
        let answer = env
            .send(request("POST", "/ai/infer", body, &[json_type]))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
        answer.assert_refusal();
    }
    assert_eq!(env.calls(FacilitatorCall::Requirements), 0);
    assert_eq!(env.runs(), 0);
}

#[tokio::test]
async fn non_ascii_bound_header_values_are_refused_before_minting() {
    let env = env();
    for value in [&b"application/json\xff"[..], b"application/\x80json"] {
        let answer = env
            .send(request(
                "POST",
                "/ai/infer",
                Body::from("{}"),
                &[("content-type", value)],
            ))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
        answer.assert_refusal();
        assert!(
            answer.error().starts_with(reason::REQUEST_BINDING),
            "{answer:?}"
        );
    }
    assert_eq!(env.calls(FacilitatorCall::Requirements), 0);
    // An unbound header may hold anything.
    let answer = env
        .send(request(
            "GET",
            "/weather",
            Body::empty(),
            &[("x-junk", b"\xff\xfe")],
        ))
        .await;
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{answer:?}");
    assert_eq!(env.runs(), 0);
}

/// The status line and body of a raw HTTP/1.1 exchange.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test]
async fn raw_http_oddities_are_refused_cleanly() {
    let env = env();
    let addr = serve(env.app.clone()).await;
    let proof = env.weather_proof().await;
    let head = |line: &str, extra: &[u8]| {
        let mut request = format!("{line}\r\nhost: {HOST}\r\nconnection: close\r\n").into_bytes();
        request.extend_from_slice(extra);
        request.extend_from_slice(b"\r\n");
        request
    };

    // Absolute-form naming another authority than Host.
    let (status, body) = raw(
        addr,
        &head(
            "GET http://evil.example/weather HTTP/1.1",
            format!("payment-signature: {proof}\r\n").as_bytes(),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(reason::REQUEST_MISMATCH), "{body}");

    // obs-text in PAYMENT-SIGNATURE.
    let (status, body) = raw(
        addr,
        &head(
            "GET /weather HTTP/1.1",
            b"payment-signature: ey\x80\xff\xfeJ9\r\n",
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_payload"), "{body}");

    // Fifty PAYMENT-SIGNATURE lines.
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines.extend_from_slice(format!("payment-signature: {proof}\r\n").as_bytes());
    }
    let (status, body) = raw(addr, &head("GET /weather HTTP/1.1", &lines)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("more than one"), "{body}");

    // A lowercase method is another method: never the priced GET.
    let (status, _) = raw(
        addr,
        &head(
            "get /weather HTTP/1.1",
            format!("payment-signature: {proof}\r\n").as_bytes(),
        ),
    )
    .await;
    assert_ne!(status, 200);

    // A chunked body one byte over the limit.
    let mut chunked = head(
        "POST /ai/infer HTTP/1.1",
        b"content-type: application/json\r\ntransfer-encoding: chunked\r\n",
    );
    let chunk = vec![b'x'; 65_536];
    let mut left = MAX_BODY + 1;
    while left > 0 {
        let size = left.min(chunk.len());
        chunked.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        chunked.extend_from_slice(&chunk[..size]);
        chunked.extend_from_slice(b"\r\n");
        left -= size;
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw(addr, &chunked).await;
    assert_eq!(status, 413, "{body}");

    // A bound header with obs-text.
    let (status, body) = raw(
        addr,
        &[
            head(
                "POST /ai/infer HTTP/1.1",
                b"content-type: application/json\xff\r\ncontent-length: 2\r\n",
            ),
            b"{}".to_vec(),
        ]
        .concat(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(reason::REQUEST_BINDING), "{body}");

    assert_eq!(env.calls(FacilitatorCall::Settle), 0);
    assert_eq!(env.runs(), 0);

    // The configured origin in absolute form buys the request it was paid for.
    let (status, body) = raw(
        addr,
        &head(
            "GET http://shop.example/weather HTTP/1.1",
            format!("payment-signature: {proof}\r\n").as_bytes(),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.runs(), 1);
}

// =============================================================================================
// 5. Payment headers never reach a handler.
// =============================================================================================

#[tokio::test]
async fn payment_headers_never_reach_a_handler() {
    let env = env();
    let proof = env.weather_proof().await;
    let both: [(&str, &[u8]); 2] = [
        ("payment-signature", proof.as_bytes()),
        ("x-payment", b"e30"),
    ];
    let paid = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK);
    for (method, target) in [
        ("GET", "/free"),
        ("POST", "/free"),
        ("OPTIONS", "/free"),
        ("OPTIONS", "/weather"),
        ("GET", "/dyn?free"),
        ("GET", "/nowhere"),
    ] {
        let _ = env
            .send(request(method, target, Body::empty(), &both))
            .await;
        let _ = env
            .send(request(
                method,
                target,
                Body::empty(),
                &[("payment-signature", proof.as_bytes())],
            ))
            .await;
    }
    assert!(env.runs() >= 4, "the free handlers ran");
    assert_eq!(env.seen.payment_headers(), 0);
}

// =============================================================================================
// 6. Expiry, by a clock the layer and the mock share.
// =============================================================================================

#[tokio::test]
async fn a_proof_past_end_plus_skew_is_expired_and_never_settled() {
    for lying in [false, true] {
        let env = env();
        let required = env.challenge("GET", "/weather", b"", &[]).await;
        let proof = env.pay(&required, "GET", "/weather", b"", &[]);
        let invoice = decode(required.accepts[0].invoice().expect("invoice")).expect("decodes");
        assert_eq!(invoice.expiry_secs, 60);
        if lying {
            env.rig.set(Mode::AlwaysSuccess);
        }
        // end + skew + 1
        env.clock.advance(Duration::from_secs(60 + 60 + 1));
        let answer = env.send(get_req("/weather", Some(&proof))).await;
        answer.assert_402(reason::INVOICE_EXPIRED);
        assert_eq!(env.rig.settles(), 0, "lying: {lying}");
        assert_eq!(env.calls(FacilitatorCall::Settle), 0);
        assert_eq!(env.runs(), 0);
        // Far later too.
        env.clock.advance(Duration::from_secs(365 * 24 * 3600));
        env.send(get_req("/weather", Some(&proof)))
            .await
            .assert_402(reason::INVOICE_EXPIRED);
        assert_eq!(env.rig.settles(), 0);
    }
}

#[tokio::test]
async fn a_proof_at_exactly_end_plus_skew_still_settles() {
    let env = env();
    let proof = env.weather_proof().await;
    env.clock.advance(Duration::from_secs(60 + 60));
    let paid = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(env.runs(), 1);
}

#[tokio::test]
async fn a_proof_whose_invoice_was_minted_too_far_in_the_future_is_refused() {
    // A receiver whose clock runs ahead mints for later; the layer (and the client) refuse it.
    let env = env_with(|builder| builder.clock_skew(Duration::from_secs(60)));
    let required = env.challenge("GET", "/weather", b"", &[]).await;
    let node_key = env.mock.node().clone();
    // Forge "by the receiver itself": the mock's own key, created 2 minutes ahead.
    let offer = &required.accepts[0];
    let request_hash = RequestHash::from_hex(offer.request_hash().unwrap()).unwrap();
    let minted = node_key
        .mint(&InvoiceSpec {
            network: Network::Regtest,
            amount_msat: 10_000,
            description: String::new(),
            description_hash: Some(request_hash.0),
            created_at: env.clock.unix_now() + Duration::from_secs(121),
            expiry: Duration::from_secs(60),
        })
        .unwrap();
    let mut accepted = offer.clone();
    accepted
        .extra
        .insert("invoice".into(), json!(minted.invoice.to_string()));
    let proof = encode_payment_signature(&v2::PaymentPayload::lnbtc(
        None,
        accepted,
        minted.preimage.to_lower_hex_string(),
    ));
    env.rig.set(Mode::AlwaysSuccess);
    env.send(get_req("/weather", Some(&proof)))
        .await
        .assert_402(reason::INVOICE_CREATED_IN_FUTURE);
    assert_eq!(env.rig.settles(), 0);
    assert_eq!(env.runs(), 0);
}

// =============================================================================================
// 7. A receiver that returns garbage.
// =============================================================================================

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Minting {
    Garbage,
    Empty,
    OtherRequestHash,
    NoDescriptionHash,
    Expired,
    ExpiresBeforeTimeout,
    WrongAmount,
    WrongExpiry,
    OtherNetwork,
    OtherPayee,
    CreatedInTheFuture,
    TimedOut,
    Failed,
    /// The same invoice for every challenge.
    Reused,
}

struct HostileReceiver {
    node: MockNode,
    mode: Minting,
    clock: ManualClock,
    minted: Mutex<Option<String>>,
    calls: AtomicUsize,
}

impl Receiver for HostileReceiver {
    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<String, ReceiverError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.unix_now();
        let mut spec = InvoiceSpec {
            network: request.network,
            amount_msat: request.amount_msat,
            description: String::new(),
            description_hash: request.description_hash,
            created_at: now,
            expiry: Duration::from_secs(request.expiry_secs),
        };
        let mut node = self.node.clone();
        match self.mode {
            Minting::Garbage => return Ok("lnbcrt1garbage\u{0}\r\nX-Evil: 1".to_owned()),
            Minting::Empty => return Ok(String::new()),
            Minting::TimedOut => {
                return Err(ReceiverError::Failed {
                    message: "timed out".into(),
                    timed_out: true,
                });
            }
            Minting::Failed => {
                return Err(ReceiverError::Failed {
                    message: "node down".into(),
                    timed_out: false,
                });
            }
            Minting::OtherRequestHash => spec.description_hash = Some([7; 32]),
            Minting::NoDescriptionHash => {
                spec.description_hash = None;
                spec.description = "a text description".into();
            }
            Minting::Expired => {
                spec.created_at = now - Duration::from_secs(7200);
            }
            Minting::ExpiresBeforeTimeout => {
                // Consistent expiry, but created long enough ago that it ends now.
                spec.created_at = now - Duration::from_secs(request.expiry_secs);
            }
            Minting::WrongAmount => spec.amount_msat += 1_000,
            Minting::WrongExpiry => spec.expiry += Duration::from_secs(1),
            Minting::OtherNetwork => spec.network = Network::Testnet,
            Minting::OtherPayee => node = MockNode::random(),
            Minting::CreatedInTheFuture => spec.created_at = now + Duration::from_secs(3600),
            Minting::Reused => {
                let mut minted = self.minted.lock().unwrap();
                if let Some(text) = minted.as_ref() {
                    return Ok(text.clone());
                }
                let text = node.mint(&spec).unwrap().invoice.to_string();
                *minted = Some(text.clone());
                return Ok(text);
            }
        }
        node.mint(&spec)
            .map(|minted| minted.invoice.to_string())
            .map_err(|err| ReceiverError::Failed {
                message: err.to_string(),
                timed_out: false,
            })
    }
}

fn receiver_env(mode: Minting) -> Env {
    let clock = ManualClock::starting_now();
    let mock = fresh_mock(&clock);
    let receiver = HostileReceiver {
        node: mock.node().clone(),
        mode,
        clock: clock.clone(),
        minted: Mutex::new(None),
        calls: AtomicUsize::new(0),
    };
    env_on(mock, clock, true, move |builder| builder.receiver(receiver))
}

#[tokio::test]
async fn a_hostile_receiver_gets_the_client_a_502_never_a_challenge() {
    for (mode, status) in [
        (Minting::Garbage, StatusCode::BAD_GATEWAY),
        (Minting::Empty, StatusCode::BAD_GATEWAY),
        (Minting::OtherRequestHash, StatusCode::BAD_GATEWAY),
        (Minting::NoDescriptionHash, StatusCode::BAD_GATEWAY),
        (Minting::Expired, StatusCode::BAD_GATEWAY),
        (Minting::ExpiresBeforeTimeout, StatusCode::BAD_GATEWAY),
        (Minting::WrongAmount, StatusCode::BAD_GATEWAY),
        (Minting::WrongExpiry, StatusCode::BAD_GATEWAY),
        (Minting::OtherNetwork, StatusCode::BAD_GATEWAY),
        (Minting::OtherPayee, StatusCode::BAD_GATEWAY),
        (Minting::CreatedInTheFuture, StatusCode::BAD_GATEWAY),
        (Minting::TimedOut, StatusCode::GATEWAY_TIMEOUT),
        (Minting::Failed, StatusCode::BAD_GATEWAY),
    ] {
        let env = receiver_env(mode);
        let answer = env.send(get_req("/weather", None)).await;
        assert_eq!(answer.status, status, "{mode:?}: {answer:?}");
        answer.assert_refusal();
        assert!(
            !answer.headers.contains_key("payment-required"),
            "{mode:?}: nothing offered"
        );
        assert!(
            !String::from_utf8_lossy(&answer.body).contains("lnbcrt1"),
            "{mode:?}: the invoice is not shown"
        );
        assert_eq!(env.runs(), 0);
        assert_eq!(
            env.calls(FacilitatorCall::Requirements),
            0,
            "the receiver, not the facilitator, mints"
        );
    }
}

#[tokio::test]
async fn a_receiver_handing_out_one_invoice_twice_is_caught() {
    // Upstream: "The server MUST NOT reuse an invoice across clients or challenges."
    let env = receiver_env(Minting::Reused);
    let first = env.send(get_req("/weather", None)).await;
    let first_invoice = first.challenge().accepts[0]
        .invoice()
        .expect("invoice")
        .to_owned();
    let second = env.send(get_req("/weather", None)).await;
    let offered_again = second.status == StatusCode::PAYMENT_REQUIRED
        && second
            .headers
            .get("payment-required")
            .and_then(|header| decode_payment_required(header.as_bytes(), 1 << 20).ok())
            .and_then(|required| required.accepts[0].invoice().map(str::to_owned))
            .is_some_and(|invoice| invoice == first_invoice);
    assert!(
        !offered_again,
        "the same invoice was offered in two challenges: {second:?}"
    );
}

#[tokio::test]
async fn a_receiver_invoice_is_paid_and_served_once() {
    // A well-behaved custom receiver (the mock's node, its invoices unknown to the mock's
    // ledger): the proof is checked on its own merits and settles once.
    struct Honest {
        node: MockNode,
        clock: ManualClock,
        preimages: Preimages,
    }
    impl Receiver for Honest {
        async fn create_invoice(&self, request: &InvoiceRequest) -> Result<String, ReceiverError> {
            let minted = self
                .node
                .mint(&InvoiceSpec {
                    network: request.network,
                    amount_msat: request.amount_msat,
                    description: String::new(),
                    description_hash: request.description_hash,
                    created_at: self.clock.unix_now(),
                    expiry: Duration::from_secs(request.expiry_secs),
                })
                .unwrap();
            let text = minted.invoice.to_string();
            self.preimages
                .lock()
                .unwrap()
                .push((text.clone(), minted.preimage));
            Ok(text)
        }
    }
    let clock = ManualClock::starting_now();
    let mock = fresh_mock(&clock);
    let preimages = Arc::new(Mutex::new(Vec::new()));
    let receiver = Honest {
        node: mock.node().clone(),
        clock: clock.clone(),
        preimages: Arc::clone(&preimages),
    };
    let env = env_on(mock, clock, true, move |builder| builder.receiver(receiver));
    let required = env.challenge("GET", "/weather", b"", &[]).await;
    let (text, preimage) = preimages.lock().unwrap()[0].clone();
    assert_eq!(required.accepts[0].invoice(), Some(text.as_str()));
    let proof = encode_payment_signature(&v2::PaymentPayload::lnbtc(
        Some(required.resource.clone()),
        required.accepts[0].clone(),
        preimage.to_lower_hex_string(),
    ));
    let paid = env.send(get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    env.send(get_req("/weather", Some(&proof)))
        .await
        .assert_402(reason::DUPLICATE_SETTLEMENT);
    assert_eq!(env.runs(), 1);
}

// =============================================================================================
// 8. Configuration mistakes the layer says it catches.
// =============================================================================================

#[tokio::test]
async fn a_route_priced_twice_serves_an_lnbtc_payment_it_took_instead_of_a_500() {
    // A route priced twice gets a loud 500 while it costs the client nothing (the seed flow
    // settles after the handler: layer_newcomer.rs). The lnbtc flow settles upfront, before the
    // inner layer can see the mistake: the payment taken, the content must follow, once.
    let clock = ManualClock::starting_now();
    let mock = fresh_mock(&clock);
    let rig = Rigged::new(mock.clone());
    let base = X402Layer::builder(rig.clone(), mock.network())
        .pay_to(mock.pay_to())
        .public_base_url(ORIGIN)
        .clock(clock.clone())
        .route("GET /double", Price::sats(10))
        .build()
        .expect("layer");
    let seen = Seen::default();
    let charged = get(handler).route_layer(base.charge(Price::sats(10)).expect("charge"));
    let app = Router::new()
        .route("/double", charged)
        .with_state(seen.clone())
        .layer(base);
    let env = Env {
        app,
        mock: mock.clone(),
        rig,
        clock,
        seen,
        wallet: TestWallet::random(),
    };
    let proof = env.proof("GET", "/double", b"", &[]).await;
    let answer = env.send(get_req("/double", Some(&proof))).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(env.runs(), 1);
    let consumed = mock
        .calls_to(FacilitatorCall::Settle)
        .iter()
        .filter(|call| call.response()["success"] == true)
        .count();
    assert_eq!(consumed, 1, "one settle, by the outer layer");
    env.send(get_req("/double", Some(&proof)))
        .await
        .assert_402(reason::DUPLICATE_SETTLEMENT);
    assert_eq!(env.runs(), 1);
}

#[tokio::test]
async fn request_targets_outside_uri_syntax_are_refused_unserved() {
    let env = env();
    let addr = serve(env.app.clone()).await;
    for target in [
        "/weather?q=\"x\"",
        "/weather?q={x}",
        "/weather?q=a|b",
        "/weather?q=^",
        "/weather?q=`",
        "/weather?q=%zz",
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n");
        let (status, body) = raw(addr, request.as_bytes()).await;
        // Either hyper refuses the request line, or the layer refuses to bind it (JSON).
        assert_eq!(status, 400, "{target}: {body}");
        if !body.is_empty() {
            assert!(body.contains(reason::REQUEST_BINDING), "{target}: {body}");
        }
    }
    assert_eq!(env.runs(), 0);
}

// =============================================================================================
// 9. Layers inside nested routers (axum strips the nest prefix from the URI they see).
// =============================================================================================

fn nested_shop() -> Env {
    let clock = ManualClock::starting_now();
    let mock = fresh_mock(&clock);
    let rig = Rigged::new(mock.clone());
    let payments = X402Layer::builder(rig.clone(), mock.network())
        .pay_to(mock.pay_to())
        .public_base_url(ORIGIN)
        .clock(clock.clone())
        .build()
        .expect("layer");
    let seen = Seen::default();
    let shop = |payments: &X402Layer<Rigged>| {
        Router::new().route(
            "/weather",
            get(handler).route_layer(payments.charge(Price::sats(10)).expect("charge")),
        )
    };
    let app = Router::new()
        .nest("/a", shop(&payments))
        .nest("/b", shop(&payments))
        .with_state(seen.clone());
    let wallet = TestWallet::random();
    Env {
        app,
        mock,
        rig,
        clock,
        seen,
        wallet,
    }
}

#[tokio::test]
async fn a_charge_inside_a_nested_router_binds_the_full_request_target() {
    let env = nested_shop();
    let required = env.challenge("GET", "/a/weather", b"", &[]).await;
    assert_eq!(
        required.resource.url,
        format!("{ORIGIN}/a/weather"),
        "the challenge binds another URL than the one requested"
    );
    // An honest client, checking the challenge against its own request, can pay it.
    let url = format!("{ORIGIN}/a/weather");
    let intended = IntendedRequest::Http {
        method: "GET",
        url: &url,
        body: b"",
        header_lines: &[],
    };
    let paid = env
        .wallet
        .pay_lnbtc(&env.mock, &required, &intended, env.now());
    assert!(paid.is_ok(), "{paid:?}");
}

#[tokio::test]
async fn a_proof_for_one_nested_route_never_buys_its_twin_in_another_nest() {
    let env = nested_shop();
    let required = env.challenge("GET", "/a/weather", b"", &[]).await;
    // Pay what the server asked (a client that trusts resource.url).
    let bound_url = required.resource.url.clone();
    let intended = IntendedRequest::Http {
        method: "GET",
        url: &bound_url,
        body: b"",
        header_lines: &[],
    };
    let proof = env
        .wallet
        .pay_lnbtc(&env.mock, &required, &intended, env.now())
        .expect("paid");
    let answer = env.send(get_req("/b/weather", Some(&proof))).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYMENT_REQUIRED,
        "a proof bought for /a/weather was accepted for /b/weather: {answer:?}"
    );
    answer.assert_402(reason::REQUEST_MISMATCH);
    assert_eq!(env.runs(), 0);
}
