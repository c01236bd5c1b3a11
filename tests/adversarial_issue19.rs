//! A hostile review of the layer's learning and request-check work (issue 19): the payee lookup
//! (single-flight, cool-down, probe mint), the flows a 402 offers, request checks and prices read
//! from the body, the 400 for a malformed `PAYMENT-SIGNATURE`, and the one-decoding 402 path.
//!
//! Each test asserts what the layer must do; those marked "found by review" failed before their
//! fix. Apps run in process
//! (`tower::ServiceExt::oneshot`); time moves only with a `ManualClock` shared by the layer, the
//! mock and the facilitator wrapper below (which can make `/supported` take time by moving that
//! clock, hold it until released, or panic). Every loop is bounded.

#[path = "common/frames_and_logs.rs"]
mod frames_and_logs;
#[path = "common/in_process.rs"]
mod in_process;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use frames_and_logs::{captured_log, framed};
use http::StatusCode;
use http::request::Parts;
use in_process::{GUARD, ORIGIN, Seen, app, get_req, handler, request, self_minted_proof, send_to};
use lightning_invoice::{
    Bolt11InvoiceDescription, Currency, Description, InvoiceBuilder, Sha256, SignedRawBolt11Invoice,
};
use serde_json::json;
use tokio::sync::Notify;
use x402_lightning::clock::{Clock, ManualClock};
use x402_lightning::invoice::{InvoiceExpectation, check_invoice};
use x402_lightning::layer::{PaymentRefused, X402LayerBuilder};
use x402_lightning::lnbtc::client::IntendedRequest;
use x402_lightning::lnbtc::header::decode_payment_signature;
use x402_lightning::lnbtc::invoice::decode;
use x402_lightning::lnbtc::reason;
use x402_lightning::lnbtc::types as v2;
use x402_lightning::mock::{Fault, InvoiceSpec, MockFacilitator, MockNode, TestWallet};
use x402_lightning::price::check::RequestRejection;
use x402_lightning::receiver::{InvoiceRequest, Receiver, ReceiverError};
use x402_lightning::{
    Facilitator, FacilitatorCall, FacilitatorError, Flows, Network, PaymentRequired,
    PaymentRequirements, Price, PriceTag, RequirementsRequest, SettleRequest, SettleResponse,
    SupportedResponse, VerifyRequest, VerifyResponse, X402Layer,
};

/// Generous guard against a hang; never reached when the crate behaves.
/// How often a test yields to let other tasks reach a point it cannot observe directly.
const SPINS: usize = 10_000;
/// The price of `GET /weather`, in msat.
const WEATHER_MSAT: u64 = 10_000;

// ---------------------------------------------------------------------------------------------
// A facilitator in front of a mock the test can swap, whose `/supported` can take time (moving
// the shared clock), be held until released, or panic.
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Front(Arc<FrontState>);

struct FrontState {
    mock: Mutex<MockFacilitator>,
    clock: ManualClock,
    supported: AtomicUsize,
    requirements: AtomicUsize,
    /// How many seconds of the shared clock each `/supported` call takes.
    supported_takes_secs: AtomicU64,
    /// Hold the next `/supported` call until `release`.
    hold_next: AtomicBool,
    entered: Notify,
    release: Notify,
    /// How many of the next `/supported` calls panic.
    panics_left: AtomicUsize,
}

impl Front {
    fn new(mock: MockFacilitator, clock: ManualClock) -> Self {
        Self(Arc::new(FrontState {
            mock: Mutex::new(mock),
            clock,
            supported: AtomicUsize::new(0),
            requirements: AtomicUsize::new(0),
            supported_takes_secs: AtomicU64::new(0),
            hold_next: AtomicBool::new(false),
            entered: Notify::new(),
            release: Notify::new(),
            panics_left: AtomicUsize::new(0),
        }))
    }

    fn mock(&self) -> MockFacilitator {
        self.0
            .mock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn swap(&self, mock: MockFacilitator) {
        *self.0.mock.lock().unwrap_or_else(PoisonError::into_inner) = mock;
    }

    fn supported_calls(&self) -> usize {
        self.0.supported.load(Ordering::SeqCst)
    }
}

impl Facilitator for Front {
    async fn requirements(
        &self,
        request: &RequirementsRequest,
    ) -> Result<PaymentRequirements, FacilitatorError> {
        self.0.requirements.fetch_add(1, Ordering::SeqCst);
        self.mock().requirements(request).await
    }

    async fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, FacilitatorError> {
        self.mock().verify(request).await
    }

    async fn settle(&self, request: &SettleRequest) -> Result<SettleResponse, FacilitatorError> {
        self.mock().settle(request).await
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        let state = &self.0;
        state.supported.fetch_add(1, Ordering::SeqCst);
        if state.hold_next.swap(false, Ordering::SeqCst) {
            state.entered.notify_one();
            state.release.notified().await;
        }
        let panics = state
            .panics_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            });
        if panics.is_ok() {
            panic!("a facilitator bug in /supported");
        }
        let takes = state.supported_takes_secs.load(Ordering::SeqCst);
        state.clock.advance(Duration::from_secs(takes));
        self.mock().supported().await
    }

    async fn settle_lnbtc(
        &self,
        request: &v2::SettleRequest,
    ) -> Result<v2::SettleResponse, FacilitatorError> {
        self.mock().settle_lnbtc(request).await
    }
}

// ---------------------------------------------------------------------------------------------
// The app: counts handler runs and payment headers seen by handlers, keeps the bodies.
// ---------------------------------------------------------------------------------------------

/// A layer on `facilitator`, payTo not pinned, pricing `GET /weather` at 10 sats.
fn builder<F: Facilitator>(facilitator: F, clock: &ManualClock) -> X402LayerBuilder<F> {
    X402Layer::builder(facilitator, Network::Regtest)
        .public_base_url(ORIGIN)
        .clock(clock.clone())
        .route("GET /weather", Price::sats(10))
}

/// The lnbtc challenge of `GET target`.
async fn challenge(app: &Router, target: &str) -> v2::PaymentRequired {
    send_to(app.clone(), get_req(target, None))
        .await
        .challenge()
}

/// Pays `required` for `method target` with `body` through `mock` at `clock`'s time, as a
/// careful client would.
fn pay(
    wallet: &TestWallet,
    mock: &MockFacilitator,
    required: &v2::PaymentRequired,
    (method, target, body): (&str, &str, &[u8]),
    clock: &ManualClock,
) -> String {
    let url = format!("{ORIGIN}{target}");
    let intended = IntendedRequest::Http {
        method,
        url: &url,
        body,
        header_lines: &[],
    };
    wallet
        .pay_lnbtc(mock, required, &intended, clock.unix_now().as_secs())
        .expect("the challenge passes the client's checks and is paid")
}

/// A paid proof of `GET /weather` behind `app`, its challenge paid through `mock`.
async fn weather_proof(app: &Router, mock: &MockFacilitator, clock: &ManualClock) -> String {
    let required = challenge(app, "/weather").await;
    pay(
        &TestWallet::random(),
        mock,
        &required,
        ("GET", "/weather", b""),
        clock,
    )
}

/// A proof for `required` with an invoice a fresh node of the attacker's minted for the same
/// request hash, amount and expiry, paid by the attacker itself: `payTo` = its node.
fn attacker_proof(required: &v2::PaymentRequired, clock: &ManualClock) -> String {
    let node = MockNode::random();
    self_minted_proof(required, &node, Some(node.pay_to().to_string()), clock)
}

/// Yields until `done` holds (at most [`SPINS`] times); whether it did.
async fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..SPINS {
        if done() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    done()
}

// =============================================================================================
// 1. The payee lookup: bounded for every request, and a verdict only on what it learned.
// =============================================================================================

/// A request waits for one payee lookup, however many are queued: a lookup that ended after a
/// request arrived answers it too, even when the lookup took longer than the cool-down (a slow
/// facilitator: its timeout is 10 s, the cool-down 5 s). (Found by review: the cool-down ran from
/// the start of the last lookup, so the n-th request of a flood waited n lookups.)
#[tokio::test]
async fn a_request_waits_for_one_payee_lookup_not_for_every_lookup_queued_before_it() {
    const FLOOD: usize = 6;
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let front = Front::new(mock, clock.clone());
    let layer = builder(front.clone(), &clock)
        .flows(Flows::LNBTC)
        .build()
        .expect("layer builds");
    layer
        .check_facilitator()
        .await
        .expect("the facilitator serves lnbtc");
    let seen = Seen::default();
    let app = app(layer, &seen);
    let required = challenge(&app, "/weather").await;

    // From now on the facilitator takes 6 s to answer /supported; the first call is held until
    // every request of the flood is queued behind it.
    front.0.supported_takes_secs.store(6, Ordering::SeqCst);
    front.0.hold_next.store(true, Ordering::SeqCst);
    let before = front.supported_calls();
    let started = clock.monotonic();
    let mut racers = Vec::new();
    for _ in 0..FLOOD {
        let proof = attacker_proof(&required, &clock);
        racers.push(tokio::spawn(send_to(
            app.clone(),
            get_req("/weather", Some(&proof)),
        )));
    }
    tokio::time::timeout(GUARD, front.0.entered.notified())
        .await
        .expect("a lookup started");
    // Let every other request reach its turn (they are all in process: no I/O in between).
    for _ in 0..SPINS {
        tokio::task::yield_now().await;
    }
    front.0.release.notify_one();
    for racer in racers {
        let answer = racer.await.expect("no panic");
        answer.assert_402(reason::PAY_TO_MISMATCH);
    }
    let lookups = front.supported_calls() - before;
    let waited = clock.monotonic().saturating_sub(started);
    assert!(
        lookups <= 2,
        "{FLOOD} requests that arrived together ran {lookups} lookups one after another: the \
         last one waited {waited:?} (each lookup takes 6 s here); a request must wait for at most \
         one lookup"
    );
    assert_eq!(seen.runs(), 0);
}

/// Held: a flood of proofs naming random payees costs one lookup per cool-down, and the same
/// again only once the clock has moved on: one `/supported`, and no probe mint when the
/// facilitator names its node; one probe mint per lookup when it names none.
#[tokio::test]
async fn a_flood_of_proofs_to_random_payees_costs_one_lookup_per_cool_down() {
    for announce_pay_to in [true, false] {
        flood_of_random_payees(announce_pay_to).await;
    }
}

async fn flood_of_random_payees(announce_pay_to: bool) {
    const FLOOD: usize = 20;
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder()
        .clock(clock.clone())
        .announce_pay_to(announce_pay_to)
        .build();
    // The request hash comes from another instance's challenge; the fresh one never minted.
    let other = app(
        builder(mock.clone(), &clock)
            .flows(Flows::LNBTC)
            .build()
            .expect("layer"),
        &Seen::default(),
    );
    let required = challenge(&other, "/weather").await;
    let front = Front::new(mock.clone(), clock.clone());
    let seen = Seen::default();
    let fresh = app(
        builder(front.clone(), &clock)
            .flows(Flows::LNBTC)
            .build()
            .expect("layer"),
        &seen,
    );
    for _ in 0..FLOOD {
        let proof = attacker_proof(&required, &clock);
        send_to(fresh.clone(), get_req("/weather", Some(&proof)))
            .await
            .assert_402(reason::PAY_TO_MISMATCH);
    }
    // Let the background check of the first priced request finish too.
    assert!(spin_until(|| front.supported_calls() >= 2).await);
    // One lookup and one background check; one challenge per request, and the lookup's probe
    // mint when the facilitator names no node.
    assert_eq!(front.supported_calls(), 2, "announce {announce_pay_to}");
    let probes = usize::from(!announce_pay_to);
    let minted = front.0.requirements.load(Ordering::SeqCst);
    assert_eq!(minted, FLOOD + probes, "announce {announce_pay_to}");
    // After the cool-down: one more lookup, and the challenge.
    clock.advance(Duration::from_secs(5));
    let proof = attacker_proof(&required, &clock);
    send_to(fresh.clone(), get_req("/weather", Some(&proof)))
        .await
        .assert_402(reason::PAY_TO_MISMATCH);
    assert_eq!(front.supported_calls(), 3);
    assert_eq!(
        front.0.requirements.load(Ordering::SeqCst),
        minted + 1 + probes
    );
    assert_eq!(seen.runs(), 0);
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 0);
}

/// A paid proof to a node of the facilitator the layer has not heard of (a facilitator that does
/// not announce `payTo` and whose node key changed) is judged after a probe mint teaches the
/// layer the new node: never a terminal `402 invalid_exact_lnbtc_pay_to_mismatch`. (Found by
/// review: the probe ran only until the layer had minted once.)
#[tokio::test]
async fn a_paid_proof_to_the_facilitators_current_node_is_never_refused_as_a_foreign_payee() {
    let clock = ManualClock::starting_now();
    let quiet = |clock: &ManualClock| {
        MockFacilitator::builder()
            .clock(clock.clone())
            .announce_pay_to(false)
            .build()
    };
    let (old, new) = (quiet(&clock), quiet(&clock));
    let front = Front::new(old, clock.clone());
    let seen = Seen::default();
    let layer = builder(front.clone(), &clock)
        .flows(Flows::LNBTC)
        .build()
        .expect("layer");
    layer
        .check_facilitator()
        .await
        .expect("serves lnbtc, names no node");
    let instance = app(layer, &seen);
    // It hands out one invoice: it knows the old node now.
    let _ = challenge(&instance, "/weather").await;

    // The facilitator's node is replaced; another instance of the service mints with the new
    // one, and a client pays it.
    front.swap(new.clone());
    let other = app(
        builder(new.clone(), &clock)
            .flows(Flows::LNBTC)
            .build()
            .expect("layer"),
        &Seen::default(),
    );
    let required = challenge(&other, "/weather").await;
    let wallet = TestWallet::random();
    let proof = pay(&wallet, &new, &required, ("GET", "/weather", b""), &clock);

    let mut answer = send_to(instance.clone(), get_req("/weather", Some(&proof))).await;
    assert_ne!(
        answer.status,
        StatusCode::PAYMENT_REQUIRED,
        "a paid proof to the facilitator's own node got a terminal verdict: {answer:?}"
    );
    if answer.status == StatusCode::SERVICE_UNAVAILABLE {
        clock.advance(Duration::from_secs(5));
        answer = send_to(instance.clone(), get_req("/weather", Some(&proof))).await;
    }
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(seen.runs(), 1);
}

/// With its own receiver (`X402LayerBuilder::receiver`: the operator's node, the only key it has
/// exclusive issuance authority over), an unpinned layer trusts only that receiver's invoices,
/// never the node the facilitator announces in `/supported`: anyone the facilitator mints for
/// could otherwise have it mint an invoice for this very request, pay it and be served while the
/// operator's node is never paid. Upstream: "an untrusted party MUST NOT be able to create an
/// invoice signed by that key that the server accepts". (Found by review.)
#[tokio::test]
async fn with_its_own_receiver_a_layer_never_takes_a_proof_paying_the_facilitators_node() {
    let clock = ManualClock::starting_now();
    let facilitator = MockFacilitator::builder().clock(clock.clone()).build();
    let own_node = MockFacilitator::builder().clock(clock.clone()).build();
    assert_ne!(facilitator.pay_to(), own_node.pay_to());
    let layer = builder(facilitator.clone(), &clock)
        .flows(Flows::LNBTC)
        .receiver(own_node.clone())
        .build()
        .expect("layer");
    layer
        .check_facilitator()
        .await
        .expect("the facilitator serves lnbtc");
    let seen = Seen::default();
    let app = app(layer, &seen);
    let required = challenge(&app, "/weather").await;
    let offer = &required.accepts[0];
    assert_eq!(offer.pay_to, own_node.pay_to().to_string(), "its own node");

    // The attacker has the facilitator mint an invoice for the same request, amount and expiry.
    let ask = RequirementsRequest {
        description_hash: offer.request_hash().map(str::to_owned),
        max_timeout_seconds: offer.max_timeout_seconds,
        ..RequirementsRequest::new(Network::Regtest, WEATHER_MSAT, "http://elsewhere.example/")
    };
    let foreign = Facilitator::requirements(&facilitator, &ask)
        .await
        .expect("the facilitator mints for anyone");
    let mut rerouted = required.clone();
    rerouted.accepts[0].pay_to = foreign.pay_to.clone();
    rerouted.accepts[0]
        .extra
        .insert("invoice".into(), json!(foreign.extra.invoice));
    let proof = pay(
        &TestWallet::random(),
        &facilitator,
        &rerouted,
        ("GET", "/weather", b""),
        &clock,
    );
    let settles = facilitator.call_count(FacilitatorCall::Settle);
    let answer = send_to(app.clone(), get_req("/weather", Some(&proof))).await;
    assert_eq!(
        seen.runs(),
        0,
        "served content the operator's node was never paid for: {answer:?}"
    );
    answer.assert_402(reason::PAY_TO_MISMATCH);
    assert_eq!(facilitator.call_count(FacilitatorCall::Settle), settles);
}

/// The seed flow's variant of the previous test: an `X-PAYMENT` authorizing an invoice of the
/// facilitator's node is never verified nor settled on a layer whose invoices its own receiver
/// mints. (Found by review.)
#[tokio::test]
async fn with_its_own_receiver_a_layer_never_settles_an_authorization_for_the_facilitators_node() {
    let clock = ManualClock::starting_now();
    let facilitator = MockFacilitator::builder().clock(clock.clone()).build();
    let own_node = MockFacilitator::builder().clock(clock.clone()).build();
    let layer = builder(facilitator.clone(), &clock)
        .flows(Flows::V1)
        .receiver(own_node.clone())
        .build()
        .expect("layer");
    layer
        .check_facilitator()
        .await
        .expect("the facilitator serves v1");
    let seen = Seen::default();
    let app = app(layer, &seen);
    let wallet = TestWallet::random();
    facilitator.fund(wallet.public_key(), 1_000_000_000);
    let ask = RequirementsRequest::new(Network::Regtest, WEATHER_MSAT, "http://elsewhere.example/");
    let foreign = Facilitator::requirements(&facilitator, &ask)
        .await
        .expect("the facilitator mints for anyone");
    let authorization = wallet.pay(&foreign);
    let answer = send_to(
        app.clone(),
        request(
            "GET",
            "/weather",
            Body::empty(),
            &[("x-payment", authorization.as_bytes())],
        ),
    )
    .await;
    assert_eq!(
        seen.runs(),
        0,
        "served content the operator's node was never paid for: {answer:?}"
    );
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{answer:?}");
    assert_eq!(facilitator.call_count(FacilitatorCall::Settle), 0);
}

/// Held: a pinned layer never looks anything up for a payment to another node, and refuses it.
#[tokio::test]
async fn a_pinned_layer_refuses_a_foreign_payee_without_any_lookup() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let front = Front::new(mock.clone(), clock.clone());
    let seen = Seen::default();
    let app = app(
        builder(front.clone(), &clock)
            .pay_to(mock.pay_to())
            .flows(Flows::LNBTC)
            .build()
            .expect("layer"),
        &seen,
    );
    let required = challenge(&app, "/weather").await;
    assert!(
        spin_until(|| front.supported_calls() == 1).await,
        "the background check"
    );
    let minted = front.0.requirements.load(Ordering::SeqCst);
    for _ in 0..5 {
        let proof = attacker_proof(&required, &clock);
        send_to(app.clone(), get_req("/weather", Some(&proof)))
            .await
            .assert_402(reason::PAY_TO_MISMATCH);
    }
    assert_eq!(front.supported_calls(), 1, "no lookup");
    assert_eq!(
        front.0.requirements.load(Ordering::SeqCst),
        minted + 5,
        "one challenge each, no probe"
    );
    assert_eq!(seen.runs(), 0);
}

/// Held: two copies of one paid proof reach a fresh instance that must look its payee up first:
/// one is served, once, whatever the order the lookup lets them through in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_proof_racing_itself_through_a_payee_lookup_is_served_once() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let wallet = TestWallet::random();
    let other = app(
        builder(mock.clone(), &clock)
            .flows(Flows::LNBTC)
            .build()
            .expect("layer"),
        &Seen::default(),
    );
    let required = challenge(&other, "/weather").await;
    let proof = pay(&wallet, &mock, &required, ("GET", "/weather", b""), &clock);
    let front = Front::new(mock.clone(), clock.clone());
    front.0.hold_next.store(true, Ordering::SeqCst);
    let seen = Seen::default();
    let fresh = app(
        builder(front.clone(), &clock)
            .flows(Flows::LNBTC)
            .build()
            .expect("layer"),
        &seen,
    );
    let racers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(send_to(fresh.clone(), get_req("/weather", Some(&proof)))))
        .collect();
    tokio::time::timeout(GUARD, front.0.entered.notified())
        .await
        .expect("a /supported call started");
    front.0.release.notify_one();
    let mut statuses = Vec::new();
    for racer in racers {
        statuses.push(racer.await.expect("no panic").status);
    }
    statuses.sort();
    assert!(
        statuses == [StatusCode::OK, StatusCode::PAYMENT_REQUIRED]
            || statuses == [StatusCode::OK, StatusCode::CONFLICT],
        "{statuses:?}"
    );
    assert_eq!(seen.runs(), 1);
    let consumed = mock
        .calls_to(FacilitatorCall::Settle)
        .iter()
        .filter(|call| call.response()["success"] == true)
        .count();
    assert_eq!(consumed, 1);
}

// =============================================================================================
// 2. The background /supported check.
// =============================================================================================

/// A `/supported` call that panics (a `Facilitator` implementation's bug, which the settle path
/// survives) does not end the background checks: a flow the facilitator withdraws or brings back
/// is still noticed. (Found by review: the running flag stayed set after the panic.)
#[tokio::test]
async fn a_supported_call_that_panics_once_does_not_end_the_background_checks() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder()
        .clock(clock.clone())
        .flows(Flows::LNBTC)
        .build();
    let front = Front::new(mock.clone(), clock.clone());
    front.0.panics_left.store(1, Ordering::SeqCst);
    let layer = builder(front.clone(), &clock)
        .pay_to(mock.pay_to())
        .build()
        .expect("layer");
    let seen = Seen::default();
    let app = app(layer.clone(), &seen);
    let first = send_to(app.clone(), get_req("/weather", None)).await;
    assert_eq!(first.status, StatusCode::PAYMENT_REQUIRED, "{first:?}");
    assert!(
        spin_until(|| front.supported_calls() == 1).await,
        "the background check ran (and panicked)"
    );
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(layer.offered_flows(), Flows::BOTH, "nothing learned yet");

    // A minute later (the wait after an unanswered check), a priced request starts another.
    clock.advance(Duration::from_secs(61));
    let _ = send_to(app.clone(), get_req("/weather", None)).await;
    assert!(
        spin_until(|| front.supported_calls() == 2).await,
        "no background check ran again after one panicked: {} call(s)",
        front.supported_calls()
    );
    assert!(
        spin_until(|| layer.offered_flows() == Flows::LNBTC).await,
        "the answer was recorded"
    );
}

// =============================================================================================
// 3. The one-decoding 402 path and the high-S change.
// =============================================================================================

/// A receiver whose invoices the strict decoder takes but BOLT11 readers refuse: no payment
/// secret and no feature bits (as `lightning-invoice`'s `Bolt11Invoice` requires).
struct Secretless {
    key: SecretKey,
    clock: ManualClock,
    minted: AtomicU64,
}

impl Receiver for Secretless {
    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<String, ReceiverError> {
        let nonce = self.minted.fetch_add(1, Ordering::SeqCst);
        let preimage = sha256::Hash::hash(&nonce.to_be_bytes()).to_byte_array();
        let description = match request.description_hash {
            Some(hash) => {
                Bolt11InvoiceDescription::Hash(Sha256(sha256::Hash::from_byte_array(hash)))
            }
            None => Bolt11InvoiceDescription::Direct(
                Description::new("weather".to_owned()).expect("description"),
            ),
        };
        let raw = InvoiceBuilder::new(Currency::Regtest)
            .invoice_description(description)
            .payment_hash(sha256::Hash::hash(&preimage))
            .duration_since_epoch(Duration::from_secs(self.clock.unix_now().as_secs()))
            .min_final_cltv_expiry_delta(18)
            .expiry_time(Duration::from_secs(request.expiry_secs))
            .amount_milli_satoshis(request.amount_msat)
            .build_raw()
            .expect("raw invoice");
        let secp = Secp256k1::new();
        let signed = raw
            .sign::<_, Infallible>(|message| Ok(secp.sign_ecdsa_recoverable(message, &self.key)))
            .expect("signed");
        Ok(signed.to_string())
    }
}

/// A 402 offers in the seed flow only an invoice the seed flow's own pre-check takes: both flows
/// decode invoices with the one strict decoder, so a receiver's invoice without a payment secret
/// or feature bits is treated alike whatever the route offers, and an `X-PAYMENT` for an offered
/// invoice passes any instance's pre-check. (Found by review: the 402 and the pre-check decoded
/// with different parsers.)
#[tokio::test]
async fn a_v1_offer_carries_only_an_invoice_the_seed_flows_own_checks_take() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let key = SecretKey::from_slice(&[9u8; 32]).expect("key");
    let mut answers = Vec::new();
    for flows in [Flows::V1, Flows::BOTH] {
        let layer = builder(mock.clone(), &clock)
            .flows(flows)
            .receiver(Secretless {
                key,
                clock: clock.clone(),
                minted: AtomicU64::new(0),
            })
            .build()
            .expect("layer");
        let answer = send_to(app(layer, &Seen::default()), get_req("/weather", None)).await;
        if answer.status == StatusCode::PAYMENT_REQUIRED {
            let body: PaymentRequired =
                serde_json::from_slice(&answer.body).expect("a v1 challenge body");
            let invoice = &body.accepts[0].extra.invoice;
            let expected = InvoiceExpectation::new(Network::Regtest).amount_msat(WEATHER_MSAT);
            let checked = check_invoice(invoice, &expected, clock.unix_now());
            assert!(
                checked.is_ok(),
                "{flows}: the 402 offers in the seed flow an invoice the seed flow's own \
                 pre-check refuses ({checked:?})"
            );
        }
        answers.push((flows, answer.status));
    }
    assert_eq!(
        answers[0].1, answers[1].1,
        "one invoice, two verdicts: {answers:?}"
    );
}

/// The high-S twin of a signed invoice: `(r, n - s)` with the other recovery id, which recovers
/// the same key.
fn high_s_twin(text: &str) -> String {
    // secp256k1's group order n.
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];
    let signed: SignedRawBolt11Invoice = text.parse().expect("it parses");
    let (recovery_id, compact) = signed.signature().0.serialize_compact();
    let mut high = compact;
    let mut borrow = 0i16;
    for index in (0..32).rev() {
        let difference = i16::from(ORDER[index]) - i16::from(compact[32 + index]) - borrow;
        borrow = i16::from(difference < 0);
        high[32 + index] = u8::try_from(difference + 256 * borrow).expect("a byte");
    }
    let flipped = RecoveryId::from_i32(recovery_id.to_i32() ^ 1).expect("0 to 3");
    let high_s = RecoverableSignature::from_compact(&high, flipped).expect("in range");
    let (raw, _, _) = signed.into_parts();
    raw.sign::<_, Infallible>(|_| Ok(high_s))
        .expect("signed")
        .to_string()
}

/// The strict decoder's recover-then-`normalize_s` refuses every high-S twin and keeps every
/// low-S original with the right payee, as verification did; and the seed flow's pre-check
/// (`check_invoice`) refuses the twin too. (Found by review: the pre-check relied on
/// `lightning-invoice`, whose recovery takes a high S.)
#[test]
fn the_seed_flow_pre_check_refuses_a_high_s_invoice_as_the_strict_decoder_does() {
    let node = MockNode::random();
    let expected = InvoiceExpectation::new(Network::Regtest)
        .amount_msat(WEATHER_MSAT)
        .payee(node.pay_to());
    for _ in 0..8 {
        let spec = InvoiceSpec::new(Network::Regtest, WEATHER_MSAT);
        let now = spec.created_at;
        let original = node.mint(&spec).expect("minted").invoice.to_string();
        let twin = high_s_twin(&original);
        assert_ne!(twin, original);
        let decoded = decode(&original).expect("the low-S original decodes");
        assert_eq!(decoded.payee, node.pay_to());
        let refused = decode(&twin).expect_err("the strict decoder refuses high S");
        assert!(refused.contains("high S"), "{refused}");
        assert!(check_invoice(&original, &expected, now).is_ok());
        let seed = check_invoice(&twin, &expected, now);
        assert!(
            seed.is_err(),
            "the seed flow's pre-check takes the high-S twin the strict decoder refuses: \
             {seed:?}"
        );
    }
}

// =============================================================================================
// 4. Request checks and prices read from the body.
// =============================================================================================

/// Held: a route priced by its body that turns out free hands the handler every byte and no
/// payment header; a route around it (a price table) that leaves the request free keeps the
/// payment for the `charge` inside, whose request check reads the same bytes; the proof is
/// settled once and the handler still gets the body whole.
#[tokio::test]
async fn a_body_read_by_two_nested_layers_reaches_the_handler_whole_and_is_charged_once() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let outer = builder(mock.clone(), &clock)
        .pay_to(mock.pay_to())
        .route(
            "POST /doc",
            PriceTag::dynamic_with_body(|_: &Parts, _: &Bytes| async { None::<Price> }),
        )
        .route(
            "POST /free",
            PriceTag::dynamic_with_body(|_: &Parts, body: &Bytes| {
                let free = body.len() < 8;
                async move { (!free).then(|| Price::sats(1)) }
            }),
        )
        .build()
        .expect("layer");
    let checks = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&checks);
    let inner = outer
        .charge(
            PriceTag::fixed(Price::sats(20)).check_request(move |_: &Parts, body: &Bytes| {
                counted.fetch_add(1, Ordering::SeqCst);
                if body.starts_with(b"doc:") {
                    Ok(())
                } else {
                    Err(RequestRejection::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "not a document",
                    ))
                }
            }),
        )
        .expect("charge");
    let seen = Seen::default();
    let app = Router::new()
        .route("/doc", post(handler).route_layer(inner))
        .route("/free", post(handler))
        .with_state(seen.clone())
        .layer(outer);

    // Free by its body: every byte, no payment header, nothing minted.
    let junk_headers: [(&str, &[u8]); 2] = [("x-payment", b"junk"), ("payment-signature", b"junk")];
    let free = send_to(
        app.clone(),
        request("POST", "/free", framed(b"tiny", 3), &junk_headers),
    )
    .await;
    assert_eq!(free.status, StatusCode::OK, "{free:?}");
    assert_eq!(
        seen.bodies().last().map(|body| &body[..]),
        Some(&b"tiny"[..])
    );
    assert_eq!(seen.payment_headers(), 0);
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), 0);

    // A body the inner check refuses: its 4xx, nothing minted.
    let refused = send_to(
        app.clone(),
        request("POST", "/doc", framed(b"spam spam spam", 5), &[]),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused:?}"
    );
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), 0);

    const DOC: &[u8] = b"doc: a document of some length, sent in frames";
    let required = send_to(app.clone(), request("POST", "/doc", framed(DOC, 7), &[]))
        .await
        .challenge();
    let wallet = TestWallet::random();
    let proof = pay(&wallet, &mock, &required, ("POST", "/doc", DOC), &clock);
    let header: [(&str, &[u8]); 1] = [("payment-signature", proof.as_bytes())];
    let paid = send_to(
        app.clone(),
        request("POST", "/doc", framed(DOC, 7), &header),
    )
    .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(seen.bodies().last().map(|body| &body[..]), Some(DOC));
    assert_eq!(seen.payment_headers(), 0);
    let replay = send_to(
        app.clone(),
        request("POST", "/doc", framed(DOC, 7), &header),
    )
    .await;
    replay.assert_402(reason::DUPLICATE_SETTLEMENT);
    assert_eq!(seen.runs(), 2, "the free request and the paid one");
    assert_eq!(checks.load(Ordering::SeqCst), 4);
}

/// Held: a chunked body over the limit on a route priced by its body is a 413 before any
/// price, mint or handler; at the limit it is priced and challenged.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_before_it_is_priced() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let priced = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&priced);
    let layer = builder(mock.clone(), &clock)
        .pay_to(mock.pay_to())
        .max_body_bytes(64)
        .route(
            "POST /doc",
            PriceTag::dynamic_with_body(move |_: &Parts, body: &Bytes| {
                counted.fetch_add(1, Ordering::SeqCst);
                let sats = u64::try_from(body.len()).unwrap_or(u64::MAX).max(1);
                async move { Some(Price::sats(sats)) }
            }),
        )
        .build()
        .expect("layer");
    let seen = Seen::default();
    let app = Router::new()
        .route("/doc", post(handler))
        .with_state(seen.clone())
        .layer(layer);
    let over = send_to(
        app.clone(),
        request("POST", "/doc", framed(&[b'x'; 65], 10), &[]),
    )
    .await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{over:?}");
    // A lying Content-Length does not help: the frames are counted.
    let lying = send_to(
        app.clone(),
        request(
            "POST",
            "/doc",
            framed(&[b'x'; 65], 10),
            &[("content-length", b"3")],
        ),
    )
    .await;
    assert_eq!(lying.status, StatusCode::PAYLOAD_TOO_LARGE, "{lying:?}");
    assert_eq!(priced.load(Ordering::SeqCst), 0);
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), 0);
    let at = send_to(
        app.clone(),
        request("POST", "/doc", framed(&[b'x'; 64], 10), &[]),
    )
    .await;
    assert_eq!(at.status, StatusCode::PAYMENT_REQUIRED, "{at:?}");
    assert_eq!(at.challenge().accepts[0].amount, "64000");
    assert_eq!(seen.runs(), 0);
}

/// Held: a request check that panics takes the request down as a panicking handler would, and
/// leaves nothing behind: nothing minted or settled, the proof still good for the request the
/// check takes, served once.
#[tokio::test]
async fn a_request_check_that_panics_leaves_no_payment_taken_or_held() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let layer = builder(mock.clone(), &clock)
        .route(
            "POST /job",
            PriceTag::fixed(Price::sats(5)).check_request(
                |head: &Parts, _: &Bytes| -> Result<(), RequestRejection> {
                    assert!(
                        !head.headers.contains_key("x-boom"),
                        "a bug in the route's check"
                    );
                    Ok(())
                },
            ),
        )
        .flows(Flows::LNBTC)
        .build()
        .expect("layer");
    let seen = Seen::default();
    let app = Router::new()
        .route("/job", post(handler))
        .with_state(seen.clone())
        .layer(layer);
    let required = send_to(app.clone(), request("POST", "/job", Body::from("job"), &[]))
        .await
        .challenge();
    let proof = pay(
        &TestWallet::random(),
        &mock,
        &required,
        ("POST", "/job", b"job"),
        &clock,
    );
    let boom = tokio::spawn(send_to(
        app.clone(),
        request(
            "POST",
            "/job",
            Body::from("job"),
            &[("payment-signature", proof.as_bytes()), ("x-boom", b"1")],
        ),
    ))
    .await;
    assert!(boom.is_err_and(|err| err.is_panic()));
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 0);
    let header: [(&str, &[u8]); 1] = [("payment-signature", proof.as_bytes())];
    let paid = send_to(
        app.clone(),
        request("POST", "/job", Body::from("job"), &header),
    )
    .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(seen.runs(), 1);
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 1);
}

/// Held: a `GET` proof never buys the `HEAD` of the same route (the binding names the method),
/// and `HEAD` is priced as `GET` is.
#[tokio::test]
async fn a_get_proof_never_buys_a_head_request() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let seen = Seen::default();
    let app = app(
        builder(mock.clone(), &clock)
            .pay_to(mock.pay_to())
            .flows(Flows::LNBTC)
            .build()
            .expect("layer"),
        &seen,
    );
    let proof = weather_proof(&app, &mock, &clock).await;
    let head = send_to(
        app.clone(),
        request(
            "HEAD",
            "/weather",
            Body::empty(),
            &[("payment-signature", proof.as_bytes())],
        ),
    )
    .await;
    assert_eq!(head.status, StatusCode::PAYMENT_REQUIRED, "{head:?}");
    assert_eq!(seen.runs(), 0);
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 0);
    let paid = send_to(app.clone(), get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK);
    assert_eq!(seen.runs(), 1);
}

// =============================================================================================
// 5. The 400 for a malformed PAYMENT-SIGNATURE, and the logs.
// =============================================================================================

/// Held: a malformed `PAYMENT-SIGNATURE` is a 400 with upstream's reason, mints and settles
/// nothing, and the refusal hook hears it once, without the header's content.
#[tokio::test]
async fn a_malformed_proof_is_a_400_that_costs_nothing_and_is_reported_once() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let refusals: Arc<Mutex<Vec<PaymentRefused>>> = Arc::default();
    let heard = Arc::clone(&refusals);
    let seen = Seen::default();
    let app = app(
        builder(mock.clone(), &clock)
            .pay_to(mock.pay_to())
            .flows(Flows::LNBTC)
            .on_payment_refused(move |event: PaymentRefused| {
                heard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(event);
                async {}
            })
            .build()
            .expect("layer"),
        &seen,
    );
    let proof = weather_proof(&app, &mock, &clock).await;
    let preimage = decode_payment_signature(proof.as_bytes(), 1 << 20).expect("decodable")
        ["payload"]["preimage"]
        .as_str()
        .expect("preimage")
        .to_owned();
    let mut wrong_network = decode_payment_signature(proof.as_bytes(), 1 << 20).expect("proof");
    wrong_network["accepted"]["network"] = json!("lnbtc:bitcoin");
    let wrong_network = x402_lightning::header::encode_header(&wrong_network).expect("encodable");
    let minted = mock.call_count(FacilitatorCall::Requirements);
    for (value, expected) in [
        ("not base64 at all!".to_owned(), reason::INVALID_PAYLOAD),
        (wrong_network, reason::NETWORK_MISMATCH),
    ] {
        let answer = send_to(app.clone(), get_req("/weather", Some(&value))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
        assert_eq!(answer.json()["reason"], expected, "{answer:?}");
        assert!(!answer.headers.contains_key("payment-required"));
        assert!(!String::from_utf8_lossy(&answer.body).contains(&preimage));
    }
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), minted);
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 0);
    let heard = refusals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(heard.len(), 2, "{heard:?}");
    for event in &heard {
        assert_eq!(event.status, StatusCode::BAD_REQUEST);
        assert!(!format!("{event:?}").contains(&preimage), "{event:?}");
    }
    // The proof itself is untouched.
    let paid = send_to(app.clone(), get_req("/weather", Some(&proof))).await;
    assert_eq!(paid.status, StatusCode::OK);
}

/// Held: at every level, through a served proof, a replay, a refused settle, a proof with a
/// wrong preimage, a 503 for an unknown payee and a seed-flow payment, the logs never hold a
/// preimage, a payment header or an authorization signature.
#[tokio::test(flavor = "current_thread")]
async fn no_preimage_or_authorization_reaches_the_logs() {
    let captured = captured_log();

    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let seen = Seen::default();
    let app = app(
        builder(mock.clone(), &clock)
            .flows(Flows::BOTH)
            .build()
            .expect("layer"),
        &seen,
    );
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), 1_000_000_000);
    let mut secrets = Vec::new();

    // Served, then replayed.
    let required = challenge(&app, "/weather").await;
    let proof = pay(&wallet, &mock, &required, ("GET", "/weather", b""), &clock);
    keep(&proof, &mut secrets);
    assert_eq!(
        send_to(app.clone(), get_req("/weather", Some(&proof)))
            .await
            .status,
        StatusCode::OK
    );
    let _ = send_to(app.clone(), get_req("/weather", Some(&proof))).await;
    // A settle the facilitator refuses.
    let required = challenge(&app, "/weather").await;
    let refused = pay(&wallet, &mock, &required, ("GET", "/weather", b""), &clock);
    keep(&refused, &mut secrets);
    mock.fail_next(FacilitatorCall::Settle, Fault::SettleFailed("nope".into()));
    let _ = send_to(app.clone(), get_req("/weather", Some(&refused))).await;
    mock.fail_next(
        FacilitatorCall::Settle,
        Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
    );
    let _ = send_to(app.clone(), get_req("/weather", Some(&refused))).await;
    // A wrong preimage (another paid invoice's).
    let mut wrong = decode_payment_signature(refused.as_bytes(), 1 << 20).expect("proof");
    wrong["payload"]["preimage"] = json!(secrets[0]);
    let wrong = x402_lightning::header::encode_header(&wrong).expect("encodable");
    secrets.push(wrong.clone());
    let _ = send_to(app.clone(), get_req("/weather", Some(&wrong))).await;
    // A payee the layer cannot judge yet: a fresh instance whose facilitator is down.
    let fresh = app_on_down_facilitator(&mock, &clock);
    let _ = send_to(fresh, get_req("/weather", Some(&refused))).await;
    mock.heal_all();
    // The seed flow.
    let body = send_to(app.clone(), get_req("/weather", None)).await;
    let v1: PaymentRequired = serde_json::from_slice(&body.body).expect("v1 body");
    let payment = wallet.authorize(&v1.accepts[0]);
    let authorization = wallet.pay(&v1.accepts[0]);
    secrets.push(payment.payload.signature.clone());
    secrets.push(authorization.clone());
    let paid = send_to(
        app.clone(),
        request(
            "GET",
            "/weather",
            Body::empty(),
            &[("x-payment", authorization.as_bytes())],
        ),
    )
    .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");

    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    let log = String::from_utf8_lossy(&captured.0.lock().expect("log")).into_owned();
    assert!(
        log.contains("lnbtc payment settled"),
        "the log is captured: {log}"
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "{secret} is in the log:\n{log}"
        );
    }
}

/// Keeps a proof and its preimage among the strings the log must not hold.
fn keep(proof: &str, secrets: &mut Vec<String>) {
    let payment = decode_payment_signature(proof.as_bytes(), 1 << 20).expect("proof");
    secrets.push(
        payment["payload"]["preimage"]
            .as_str()
            .expect("hex")
            .to_owned(),
    );
    secrets.push(proof.to_owned());
}

/// An app whose layer (payTo not pinned) never heard of `mock`'s node and cannot ask it now.
fn app_on_down_facilitator(mock: &MockFacilitator, clock: &ManualClock) -> Router {
    for call in [FacilitatorCall::Supported, FacilitatorCall::Requirements] {
        mock.fail_always(call, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    }
    app(
        builder(mock.clone(), clock)
            .flows(Flows::LNBTC)
            .build()
            .expect("layer"),
        &Seen::default(),
    )
}
