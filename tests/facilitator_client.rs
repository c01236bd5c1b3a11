//! `HttpFacilitator` against the mock facilitator over real HTTP: every call, every verify
//! reason, settle-once semantics, every injected fault, timeouts and transport failures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use x402_lightning::clock::{Clock, ManualClock};
use x402_lightning::invoice::{InvoiceCheckError, check_requirements_invoice};
use x402_lightning::mock::{
    Fault, Forgery, InvoiceFault, InvoiceSpec, MockFacilitator, MockNode, TestWallet,
};
use x402_lightning::types::reason;
use x402_lightning::{
    Facilitator, FacilitatorCall, FacilitatorError, HttpFacilitator, Network, PaymentRequirements,
    RequirementsRequest, Scheme, VerifyRequest,
};

const PRICE_MSAT: u64 = 10_000;

fn ask(amount: u64) -> RequirementsRequest {
    RequirementsRequest {
        description: "Weather report".into(),
        mime_type: "application/json".into(),
        ..RequirementsRequest::new(Network::Regtest, amount, "http://127.0.0.1:3000/weather")
    }
}

/// A mock on a clock that moves only when told, a client for it, and a wallet funded with
/// 1,000 sat.
struct World {
    mock: MockFacilitator,
    facilitator: HttpFacilitator,
    wallet: TestWallet,
    clock: ManualClock,
}

impl World {
    async fn new() -> Self {
        Self::with(MockFacilitator::builder()).await
    }

    async fn with(builder: x402_lightning::mock::MockFacilitatorBuilder) -> Self {
        let clock = ManualClock::starting_now();
        let mock = builder
            .clock(clock.clone())
            .start()
            .await
            .expect("mock starts");
        let facilitator = HttpFacilitator::new(mock.url()).expect("valid url");
        let wallet = TestWallet::random();
        mock.fund(wallet.public_key(), 1_000_000);
        Self {
            mock,
            facilitator,
            wallet,
            clock,
        }
    }

    /// Wall-clock time as the mock sees it.
    fn now(&self) -> Duration {
        self.clock.unix_now()
    }

    async fn requirements(&self) -> PaymentRequirements {
        self.facilitator
            .requirements(&ask(PRICE_MSAT))
            .await
            .expect("requirements")
    }

    /// A verify/settle request in which `wallet` pays fresh requirements honestly.
    async fn paid_request(&self) -> VerifyRequest {
        let requirements = self.requirements().await;
        VerifyRequest::new(self.wallet.authorize(&requirements), requirements)
    }

    async fn invalid_reason(&self, request: &VerifyRequest) -> String {
        let verdict = self.facilitator.verify(request).await.expect("a verdict");
        assert!(!verdict.is_valid, "expected a refusal, got {verdict:?}");
        verdict.invalid_reason.expect("a reason")
    }
}

fn decode_forgery(value: &str) -> x402_lightning::PaymentPayload {
    x402_lightning::header::decode_payment_header(value.as_bytes(), 8192).expect("decodes")
}

// ---------------------------------------------------------------------------------------------
// The four calls, honestly answered

#[tokio::test]
async fn requirements_carry_a_fresh_invoice_for_the_asked_amount() {
    let world = World::new().await;
    let first = world.requirements().await;
    let second = world.requirements().await;

    assert_eq!(first.scheme, Scheme::Exact);
    assert_eq!(first.network, Network::Regtest);
    assert_eq!(first.max_amount_required, PRICE_MSAT);
    assert_eq!(first.asset, "BTC");
    assert_eq!(first.pay_to, world.mock.pay_to().to_string());
    assert_eq!(first.resource, "http://127.0.0.1:3000/weather");
    assert_eq!(first.description, "Weather report");
    assert_eq!(first.mime_type, "application/json");
    assert_eq!(first.max_timeout_seconds, 60);
    assert!(first.extra.invoice.starts_with("lnbcrt"));
    let checked = check_requirements_invoice(&first, world.now()).expect("consistent");
    assert_eq!(checked.amount_msat(), PRICE_MSAT);
    assert_ne!(
        first.extra.invoice, second.extra.invoice,
        "each call mints anew"
    );
}

#[tokio::test]
async fn supported_lists_the_network_and_the_payee() {
    let world = World::with(MockFacilitator::builder().network(Network::Testnet)).await;
    let supported = world.facilitator.supported().await.expect("supported");
    let kind = supported.find(Network::Testnet).expect("testnet listed");
    assert_eq!(kind.scheme, "exact");
    assert_eq!(
        kind.extra.as_ref().and_then(|extra| extra.pay_to.clone()),
        Some(world.mock.pay_to().to_string())
    );
    assert!(supported.find(Network::Regtest).is_none());
}

#[tokio::test]
async fn a_valid_authorization_verifies_and_settles_once() {
    let world = World::new().await;
    let request = world.paid_request().await;

    let verdict = world.facilitator.verify(&request).await.expect("verify");
    assert!(verdict.is_valid);
    assert_eq!(verdict.invalid_reason, None);
    assert_eq!(verdict.payer.as_deref(), Some(world.wallet.id().as_str()));
    assert_eq!(
        world.mock.balance(world.wallet.public_key()),
        1_000_000,
        "verify pays nothing"
    );

    let settled = world.facilitator.settle(&request).await.expect("settle");
    let invoice: x402_lightning::Bolt11Invoice = request
        .payment_payload
        .payload
        .invoice
        .parse()
        .expect("invoice");
    assert!(settled.success);
    assert_eq!(settled.error_reason, None);
    assert_eq!(settled.transaction, invoice.payment_hash().to_string());
    assert_eq!(settled.network, Network::Regtest);
    assert_eq!(settled.payer.as_deref(), Some(world.wallet.id().as_str()));
    assert_eq!(
        world.mock.balance(world.wallet.public_key()),
        1_000_000 - PRICE_MSAT
    );
    assert!(world.mock.is_paid(&request.payment_payload.payload.invoice));
}

#[tokio::test]
async fn a_second_settle_of_one_invoice_is_refused_and_pays_nothing() {
    let world = World::new().await;
    let request = world.paid_request().await;
    assert!(world.facilitator.settle(&request).await.unwrap().success);

    let again = world.facilitator.settle(&request).await.expect("a verdict");
    assert!(!again.success);
    assert_eq!(
        again.error_reason.as_deref(),
        Some(reason::DUPLICATE_SETTLEMENT)
    );
    assert_eq!(again.transaction, "");
    assert_eq!(
        world.mock.balance(world.wallet.public_key()),
        1_000_000 - PRICE_MSAT
    );
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::DUPLICATE_SETTLEMENT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_settles_of_one_invoice_pay_it_exactly_once() {
    let world = Arc::new(World::new().await);
    let request = Arc::new(world.paid_request().await);

    let settles = (0..32).map(|_| {
        let (world, request) = (Arc::clone(&world), Arc::clone(&request));
        tokio::spawn(async move { world.facilitator.settle(&request).await })
    });
    let mut successes = 0;
    for settle in settles {
        let response = settle.await.expect("task").expect("a verdict");
        if response.success {
            successes += 1;
        } else {
            assert_eq!(
                response.error_reason.as_deref(),
                Some(reason::DUPLICATE_SETTLEMENT)
            );
        }
    }
    assert_eq!(successes, 1);
    assert_eq!(
        world.mock.balance(world.wallet.public_key()),
        1_000_000 - PRICE_MSAT
    );
    assert_eq!(world.mock.call_count(FacilitatorCall::Settle), 32);
}

#[tokio::test]
async fn calls_are_recorded_with_bodies_headers_and_service_time() {
    let mock = MockFacilitator::start().await.unwrap();
    let facilitator = HttpFacilitator::builder(mock.url())
        .bearer_token("t0ken")
        .header("x-api-key", "k3y")
        .build()
        .unwrap();
    facilitator.requirements(&ask(PRICE_MSAT)).await.unwrap();
    facilitator.supported().await.unwrap();

    let calls = mock.calls();
    assert_eq!(calls.len(), 2);
    let first = &calls[0];
    assert_eq!(first.call, FacilitatorCall::Requirements);
    assert_eq!(first.request()["amount"], json!("10000"));
    assert_eq!(first.request()["network"], json!("lightning-regtest"));
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.response()["maxAmountRequired"], json!("10000"));
    assert_eq!(first.headers["authorization"], "Bearer t0ken");
    assert_eq!(first.headers["x-api-key"], "k3y");
    assert!(first.service_time > Duration::ZERO);
    assert_eq!(first.fault, None);
    assert_eq!(calls[1].call, FacilitatorCall::Supported);
    assert_eq!(calls[1].request(), Value::Null);

    mock.clear_calls();
    assert!(mock.calls().is_empty());
}

#[tokio::test]
async fn a_required_bearer_token_is_enforced() {
    let mock = MockFacilitator::builder()
        .require_bearer_token("s3cret")
        .start()
        .await
        .unwrap();
    let anonymous = HttpFacilitator::new(mock.url()).unwrap();
    let err = anonymous.supported().await.unwrap_err();
    assert!(
        matches!(
            err,
            FacilitatorError::Status {
                status: StatusCode::UNAUTHORIZED,
                ..
            }
        ),
        "{err}"
    );
    let wrong = HttpFacilitator::builder(mock.url())
        .bearer_token("guess")
        .build()
        .unwrap();
    assert!(wrong.supported().await.is_err());
    let authorized = HttpFacilitator::builder(mock.url())
        .bearer_token("s3cret")
        .build()
        .unwrap();
    assert!(authorized.supported().await.is_ok());
}

// ---------------------------------------------------------------------------------------------
// Every reason /verify (and /settle) gives

#[tokio::test]
async fn another_x402_version_is_invalid_x402_version() {
    let world = World::new().await;
    let mut request = world.paid_request().await;
    request.x402_version = 2;
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVALID_X402_VERSION
    );

    let mut request = world.paid_request().await;
    request.payment_payload.x402_version = 2;
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVALID_X402_VERSION
    );
}

#[tokio::test]
async fn another_network_is_invalid_network() {
    let world = World::new().await;
    let mut request = world.paid_request().await;
    request.payment_payload.network = Network::Testnet;
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVALID_NETWORK
    );

    let mut request = world.paid_request().await;
    request.payment_requirements.network = Network::Bitcoin;
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVALID_NETWORK
    );
}

#[tokio::test]
async fn an_invoice_other_than_the_required_one_is_invalid_payload() {
    // PROTOCOL.md Part 3, step 4: `payload.invoice` = `requirements.extra.invoice`.
    let world = World::new().await;
    let mut request = world.paid_request().await;
    request.payment_requirements.extra.invoice = world.requirements().await.extra.invoice;
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVALID_PAYLOAD
    );
    let settled = world.facilitator.settle(&request).await.unwrap();
    assert!(!settled.success);
    assert_eq!(
        settled.error_reason.as_deref(),
        Some(reason::INVALID_PAYLOAD)
    );
    assert_eq!(world.mock.balance(world.wallet.public_key()), 1_000_000);
}

/// `s` → `n − s`: the high-S twin of a compact ECDSA signature (64 bytes, hex), which verifies
/// under the same key with a non-strict verifier.
fn high_s_twin(signature_hex: &str) -> String {
    // secp256k1's group order n.
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];
    let compact: Vec<u8> = (0..signature_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&signature_hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(compact.len(), 64, "a compact signature");
    let mut high = compact.clone();
    let mut borrow = 0i16;
    for index in (0..32).rev() {
        let difference = i16::from(ORDER[index]) - i16::from(compact[32 + index]) - borrow;
        borrow = i16::from(difference < 0);
        high[32 + index] = u8::try_from(difference + 256 * borrow).expect("a byte");
    }
    high.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn a_high_s_signature_is_invalid_signature() {
    // PROTOCOL.md Part 3, "Signatures": compact ECDSA, low-S. The high-S twin of a valid
    // signature is refused, not accepted as the low-S one.
    let world = World::new().await;
    let mut request = world.paid_request().await;
    let twin = high_s_twin(&request.payment_payload.payload.signature);
    {
        use bitcoin::hashes::{Hash as _, sha256};
        use bitcoin::secp256k1::{Message, Secp256k1, ecdsa::Signature};
        let bytes: Vec<u8> = (0..twin.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&twin[i..i + 2], 16).expect("hex"))
            .collect();
        let mut signature = Signature::from_compact(&bytes).expect("in range");
        signature.normalize_s();
        let digest = sha256::Hash::hash(request.payment_payload.payload.invoice.as_bytes());
        Secp256k1::verification_only()
            .verify_ecdsa(
                &Message::from_digest(digest.to_byte_array()),
                &signature,
                &world.wallet.public_key(),
            )
            .expect("the twin is the same signature up to S");
    }
    request.payment_payload.payload.signature = twin;
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVALID_SIGNATURE
    );
    let settled = world.facilitator.settle(&request).await.unwrap();
    assert!(!settled.success);
    assert_eq!(
        settled.error_reason.as_deref(),
        Some(reason::INVALID_SIGNATURE)
    );
    assert_eq!(world.mock.balance(world.wallet.public_key()), 1_000_000);
}

#[tokio::test]
async fn a_from_that_is_not_a_public_key_is_invalid_payload() {
    let world = World::new().await;
    for from in ["", "zz", "02deadbeef", &"04".repeat(33)] {
        let mut request = world.paid_request().await;
        request.payment_payload.payload.from = from.to_owned();
        assert_eq!(
            world.invalid_reason(&request).await,
            reason::INVALID_PAYLOAD,
            "{from:?}"
        );
    }
}

#[tokio::test]
async fn a_signature_not_by_from_is_invalid_signature() {
    let world = World::new().await;
    for forgery in [Forgery::TamperedSignature, Forgery::SignedByAnotherKey] {
        let requirements = world.requirements().await;
        let forged = decode_forgery(&world.wallet.forge(&requirements, forgery.clone()));
        let request = VerifyRequest::new(forged, requirements);
        assert_eq!(
            world.invalid_reason(&request).await,
            reason::INVALID_SIGNATURE,
            "{forgery:?}"
        );
        let settled = world.facilitator.settle(&request).await.unwrap();
        assert!(!settled.success);
        assert_eq!(
            settled.error_reason.as_deref(),
            Some(reason::INVALID_SIGNATURE)
        );
    }
    let mut request = world.paid_request().await;
    request.payment_payload.payload.signature = "not hex".into();
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVALID_SIGNATURE
    );
    assert_eq!(world.mock.balance(world.wallet.public_key()), 1_000_000);
}

#[tokio::test]
async fn hex_with_a_0x_prefix_is_accepted() {
    let world = World::new().await;
    let mut request = world.paid_request().await;
    let payload = &mut request.payment_payload.payload;
    payload.signature = format!("0x{}", payload.signature);
    payload.from = format!("0x{}", payload.from);
    assert!(world.facilitator.verify(&request).await.unwrap().is_valid);
}

#[tokio::test]
async fn an_invoice_minted_elsewhere_is_invoice_unknown() {
    let world = World::new().await;
    let stranger = MockNode::random()
        .mint(&InvoiceSpec::new(Network::Regtest, PRICE_MSAT))
        .unwrap()
        .invoice
        .to_string();
    let mut requirements = world.requirements().await;
    requirements.extra.invoice = stranger.clone();
    let forged = decode_forgery(
        &world
            .wallet
            .forge(&requirements, Forgery::AnotherInvoice(stranger)),
    );
    let request = VerifyRequest::new(forged, requirements);
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVOICE_UNKNOWN
    );
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVOICE_UNKNOWN,
        "stable"
    );

    // Even the mock's own key cannot slip an invoice past it that it did not hand out.
    let own_but_unissued = world
        .mock
        .node()
        .mint(&InvoiceSpec::new(Network::Regtest, PRICE_MSAT))
        .unwrap()
        .invoice
        .to_string();
    let mut requirements = world.requirements().await;
    requirements.extra.invoice = own_but_unissued;
    let request = VerifyRequest::new(world.wallet.authorize(&requirements), requirements);
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVOICE_UNKNOWN
    );
}

#[tokio::test]
async fn requirements_for_another_amount_are_invoice_amount() {
    let world = World::new().await;
    let mut request = world.paid_request().await;
    request.payment_requirements.max_amount_required = 1;
    assert_eq!(world.invalid_reason(&request).await, reason::INVOICE_AMOUNT);
}

#[tokio::test]
async fn requirements_for_another_payee_are_invoice_payee() {
    let world = World::new().await;
    let mut request = world.paid_request().await;
    request.payment_requirements.pay_to = MockNode::random().pay_to().to_string();
    assert_eq!(world.invalid_reason(&request).await, reason::INVOICE_PAYEE);
}

#[tokio::test]
async fn an_expired_invoice_is_payment_expired() {
    let world = World::new().await;
    world.mock.fail_next(
        FacilitatorCall::Requirements,
        Fault::Invoice(InvoiceFault::Expired),
    );
    let request = world.paid_request().await;
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::PAYMENT_EXPIRED
    );
    let settled = world.facilitator.settle(&request).await.unwrap();
    assert_eq!(
        settled.error_reason.as_deref(),
        Some(reason::PAYMENT_EXPIRED)
    );
}

#[tokio::test]
async fn an_invoice_that_expires_while_waiting_is_payment_expired() {
    let world =
        World::with(MockFacilitator::builder().invoice_expiry(Duration::from_secs(60))).await;
    let request = world.paid_request().await;
    let expires_at = check_requirements_invoice(&request.payment_requirements, world.now())
        .expect("a valid invoice")
        .expires_at();

    // A second before its expiry it still verifies...
    world
        .clock
        .advance(expires_at - world.now() - Duration::from_secs(1));
    let verdict = world.facilitator.verify(&request).await.expect("a verdict");
    assert!(verdict.is_valid, "{verdict:?}");
    // ...and from its expiry on it is neither valid nor paid.
    world.clock.advance(Duration::from_secs(1));
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::PAYMENT_EXPIRED
    );
    let settled = world.facilitator.settle(&request).await.expect("a verdict");
    assert!(!settled.success);
    assert_eq!(
        settled.error_reason.as_deref(),
        Some(reason::PAYMENT_EXPIRED)
    );
    assert_eq!(world.mock.balance(world.wallet.public_key()), 1_000_000);
}

#[tokio::test]
async fn a_payer_without_enough_balance_is_insufficient_funds() {
    let world = World::new().await;
    let poor = TestWallet::random();
    world.mock.fund(poor.public_key(), PRICE_MSAT - 1);
    let requirements = world.requirements().await;
    let request = VerifyRequest::new(poor.authorize(&requirements), requirements);

    let verdict = world.facilitator.verify(&request).await.unwrap();
    assert_eq!(
        verdict.invalid_reason.as_deref(),
        Some(reason::INSUFFICIENT_FUNDS)
    );
    assert_eq!(
        verdict.payer.as_deref(),
        Some(poor.id().as_str()),
        "the payer is named"
    );
    let settled = world.facilitator.settle(&request).await.unwrap();
    assert!(!settled.success);
    assert_eq!(
        settled.error_reason.as_deref(),
        Some(reason::INSUFFICIENT_FUNDS)
    );
    assert_eq!(world.mock.balance(poor.public_key()), PRICE_MSAT - 1);

    world.mock.fund(poor.public_key(), 1);
    assert!(world.facilitator.settle(&request).await.unwrap().success);
    assert_eq!(world.mock.balance(poor.public_key()), 0);
}

/// Posts a raw body to the mock, as a client in another language might.
async fn post_raw(mock: &MockFacilitator, path: &str, body: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", mock.url()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_verify_bodies_get_the_most_specific_verdict() {
    let world = World::new().await;
    let valid = serde_json::to_value(world.paid_request().await).unwrap();
    let spoiled = |pointer: &str, value: Value| {
        let mut body = valid.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        body.to_string()
    };
    let cases = [
        (
            spoiled("/x402Version", json!(2)),
            reason::INVALID_X402_VERSION,
        ),
        (
            spoiled("/paymentPayload/x402Version", json!("1")),
            reason::INVALID_X402_VERSION,
        ),
        (
            spoiled("/paymentPayload/scheme", json!("upto")),
            reason::INVALID_SCHEME,
        ),
        (
            spoiled("/paymentRequirements/scheme", json!("exact-evm")),
            reason::INVALID_SCHEME,
        ),
        (
            spoiled("/paymentPayload/network", json!("base-sepolia")),
            reason::INVALID_NETWORK,
        ),
        (
            spoiled("/paymentRequirements/maxAmountRequired", json!(10000)),
            reason::INVALID_PAYLOAD,
        ),
        (
            spoiled("/paymentPayload/payload", json!(null)),
            reason::INVALID_PAYLOAD,
        ),
    ];
    for (body, expected) in cases {
        for path in ["/verify", "/settle"] {
            let (status, verdict) = post_raw(&world.mock, path, &body).await;
            assert_eq!(status, StatusCode::OK, "{path} {body}");
            let reason = if path == "/verify" {
                assert_eq!(verdict["isValid"], json!(false));
                &verdict["invalidReason"]
            } else {
                assert_eq!(verdict["success"], json!(false));
                assert_eq!(verdict["transaction"], json!(""));
                &verdict["errorReason"]
            };
            assert_eq!(reason, &json!(expected), "{path} {body}");
        }
    }
    let (status, body) = post_raw(&world.mock, "/verify", "not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("not JSON"));
}

#[tokio::test]
async fn requirements_for_another_network_or_nothing_are_refused() {
    let world = World::new().await;
    let mut other_network = ask(PRICE_MSAT);
    other_network.network = Network::Bitcoin;
    let mut zero = ask(PRICE_MSAT);
    zero.amount = 0;
    for bad in [other_network, zero] {
        let err = world.facilitator.requirements(&bad).await.unwrap_err();
        assert!(
            matches!(
                &err,
                FacilitatorError::Status {
                    status: StatusCode::BAD_REQUEST,
                    ..
                }
            ),
            "{err}"
        );
    }
    let (status, _) = post_raw(&world.mock, "/requirements", r#"{"x402Version":1}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------------
// Injected faults: transport faults on every call

async fn each_call(
    facilitator: &HttpFacilitator,
    world: &World,
    call: FacilitatorCall,
) -> Result<(), FacilitatorError> {
    match call {
        FacilitatorCall::Requirements => facilitator.requirements(&ask(PRICE_MSAT)).await.map(drop),
        FacilitatorCall::Verify => {
            let request = world.paid_request().await;
            facilitator.verify(&request).await.map(drop)
        }
        FacilitatorCall::Settle => {
            let request = world.paid_request().await;
            facilitator.settle(&request).await.map(drop)
        }
        FacilitatorCall::Supported => facilitator.supported().await.map(drop),
        FacilitatorCall::Invoice => {
            let minted = world.mock.requirements(&ask(PRICE_MSAT)).await?;
            let invoice: x402_lightning::Bolt11Invoice = minted
                .extra
                .invoice
                .parse()
                .expect("the mock mints valid invoices");
            let hash = bitcoin::hashes::Hash::to_byte_array(*invoice.payment_hash());
            facilitator.invoice_status(&hash).await.map(drop)
        }
    }
}

#[tokio::test]
async fn an_injected_error_status_is_a_status_error_with_an_excerpt_on_every_call() {
    let world = World::new().await;
    for call in FacilitatorCall::ALL {
        for status in [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::NOT_FOUND,
        ] {
            world.mock.fail_next(call, Fault::Status(status));
            let err = each_call(&world.facilitator, &world, call)
                .await
                .unwrap_err();
            match &err {
                FacilitatorError::Status {
                    call: failed,
                    status: got,
                    body_excerpt,
                } => {
                    assert_eq!((*failed, *got), (call, status));
                    assert!(body_excerpt.contains("injected fault"), "{body_excerpt}");
                }
                other => panic!("{call}: expected a status error, got {other}"),
            }
            assert_eq!(err.call(), call);
            assert!(!err.is_timeout());
        }
        each_call(&world.facilitator, &world, call)
            .await
            .expect("a one-shot fault is gone");
    }
}

#[tokio::test]
async fn an_injected_garbage_body_is_an_invalid_reply_on_every_call() {
    let world = World::new().await;
    for call in FacilitatorCall::ALL {
        world.mock.fail_next(call, Fault::Garbage);
        let err = each_call(&world.facilitator, &world, call)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FacilitatorError::InvalidReply { call: failed, reason } if *failed == call && reason.contains("not json")),
            "{call}: {err}"
        );
    }
}

#[tokio::test]
async fn a_delay_beyond_the_timeout_is_a_timeout_on_every_call() {
    let world = World::new().await;
    let impatient = HttpFacilitator::builder(world.mock.url())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    for call in FacilitatorCall::ALL {
        world
            .mock
            .fail_next(call, Fault::Delay(Duration::from_secs(3)));
        let err = each_call(&impatient, &world, call).await.unwrap_err();
        assert!(
            matches!(err, FacilitatorError::Timeout { call: failed, after } if failed == call && after == Duration::from_millis(200)),
            "{call}: {err}"
        );
        assert!(err.is_timeout());
    }
}

#[tokio::test]
async fn a_delay_within_the_timeout_is_answered_honestly() {
    let world = World::new().await;
    world.mock.fail_always(
        FacilitatorCall::Verify,
        Fault::Delay(Duration::from_millis(100)),
    );
    let request = world.paid_request().await;
    assert!(world.facilitator.verify(&request).await.unwrap().is_valid);
    let recorded = world.mock.calls_to(FacilitatorCall::Verify);
    assert!(recorded[0].service_time >= Duration::from_millis(100));
    assert_eq!(
        recorded[0].fault,
        Some(Fault::Delay(Duration::from_millis(100)))
    );
}

#[tokio::test]
async fn a_standing_fault_lasts_until_healed() {
    let world = World::new().await;
    world.mock.fail_always(
        FacilitatorCall::Supported,
        Fault::Status(StatusCode::BAD_GATEWAY),
    );
    for _ in 0..3 {
        assert!(world.facilitator.supported().await.is_err());
    }
    world.mock.heal(FacilitatorCall::Supported);
    assert!(world.facilitator.supported().await.is_ok());

    world
        .mock
        .fail_always(FacilitatorCall::Supported, Fault::Garbage);
    world
        .mock
        .fail_next(FacilitatorCall::Requirements, Fault::Garbage);
    world.mock.heal_all();
    assert!(world.facilitator.supported().await.is_ok());
    assert!(world.facilitator.requirements(&ask(1)).await.is_ok());
}

#[tokio::test]
async fn a_fault_that_does_not_apply_to_a_call_says_so_with_a_500() {
    let world = World::new().await;
    world
        .mock
        .fail_next(FacilitatorCall::Supported, Fault::Invalid("nope".into()));
    let err = world.facilitator.supported().await.unwrap_err();
    assert!(
        matches!(&err, FacilitatorError::Status { status: StatusCode::INTERNAL_SERVER_ERROR, body_excerpt, .. } if body_excerpt.contains("does not apply")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Injected faults: verdicts and bad invoices

#[tokio::test]
async fn an_injected_invalid_verdict_is_a_verdict_not_an_error() {
    let world = World::new().await;
    world.mock.fail_next(
        FacilitatorCall::Verify,
        Fault::Invalid("insufficient_funds".into()),
    );
    let request = world.paid_request().await;
    assert_eq!(world.invalid_reason(&request).await, "insufficient_funds");
    assert!(world.facilitator.verify(&request).await.unwrap().is_valid);
}

#[tokio::test]
async fn an_injected_failed_settle_pays_nothing() {
    let world = World::new().await;
    world.mock.fail_next(
        FacilitatorCall::Settle,
        Fault::SettleFailed(reason::PAYMENT_FAILED.into()),
    );
    let request = world.paid_request().await;
    let failed = world.facilitator.settle(&request).await.expect("a verdict");
    assert!(!failed.success);
    assert_eq!(failed.error_reason.as_deref(), Some(reason::PAYMENT_FAILED));
    assert_eq!(failed.transaction, "");
    assert!(!world.mock.is_paid(&request.payment_payload.payload.invoice));
    assert_eq!(world.mock.balance(world.wallet.public_key()), 1_000_000);

    assert!(
        world.facilitator.settle(&request).await.unwrap().success,
        "payable afterwards"
    );
}

async fn faulty_requirements(world: &World, fault: InvoiceFault) -> PaymentRequirements {
    world
        .mock
        .fail_next(FacilitatorCall::Requirements, Fault::Invoice(fault));
    world.requirements().await
}

#[tokio::test]
async fn injected_bad_invoices_fail_the_requirements_self_check() {
    let world = World::new().await;
    let now = world.now();

    let wrong_amount = faulty_requirements(&world, InvoiceFault::WrongAmount).await;
    assert_eq!(wrong_amount.max_amount_required, PRICE_MSAT);
    assert!(matches!(
        check_requirements_invoice(&wrong_amount, now),
        Err(InvoiceCheckError::WrongAmount { expected: PRICE_MSAT, found }) if found != PRICE_MSAT
    ));

    let wrong_network = faulty_requirements(&world, InvoiceFault::WrongNetwork).await;
    assert_eq!(wrong_network.network, Network::Regtest);
    assert!(matches!(
        check_requirements_invoice(&wrong_network, now),
        Err(InvoiceCheckError::WrongNetwork {
            expected: Network::Regtest,
            ..
        })
    ));

    let wrong_payee = faulty_requirements(&world, InvoiceFault::WrongPayee).await;
    assert_eq!(wrong_payee.pay_to, world.mock.pay_to().to_string());
    assert!(matches!(
        check_requirements_invoice(&wrong_payee, now),
        Err(InvoiceCheckError::WrongPayee { .. })
    ));

    let expired = faulty_requirements(&world, InvoiceFault::Expired).await;
    assert!(matches!(
        check_requirements_invoice(&expired, now),
        Err(InvoiceCheckError::Expired { .. })
    ));
}

#[tokio::test]
async fn injected_consistent_but_unasked_requirements_pass_the_self_check_only() {
    let world = World::new().await;
    let now = world.now();

    let unasked = faulty_requirements(&world, InvoiceFault::UnaskedAmount).await;
    assert_ne!(
        unasked.max_amount_required, PRICE_MSAT,
        "not what was asked"
    );
    assert!(check_requirements_invoice(&unasked, now).is_ok());

    let foreign = faulty_requirements(&world, InvoiceFault::ForeignPayTo).await;
    assert_ne!(
        foreign.pay_to,
        world.mock.pay_to().to_string(),
        "not the facilitator's node"
    );
    assert!(check_requirements_invoice(&foreign, now).is_ok());

    // The mock itself refuses to be paid through them.
    let request = VerifyRequest::new(world.wallet.authorize(&foreign), foreign);
    assert_eq!(world.invalid_reason(&request).await, reason::INVOICE_PAYEE);
}

// ---------------------------------------------------------------------------------------------
// Transport failures that are not the mock's doing

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let facilitator = HttpFacilitator::new(format!("http://{addr}")).unwrap();
    let err = facilitator.supported().await.unwrap_err();
    assert!(
        matches!(
            &err,
            FacilitatorError::Unreachable {
                call: FacilitatorCall::Supported,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("unreachable"), "{err}");
}

/// Serves `app` on a free loopback port.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A server answering `body` to everything.
async fn serve_fixed(body: &'static str) -> SocketAddr {
    serve(axum::Router::new().fallback(move || async move { body })).await
}

#[tokio::test]
async fn an_oversized_reply_is_an_invalid_reply() {
    let huge: &'static str = Box::leak(format!("\"{}\"", "a".repeat(100_000)).into_boxed_str());
    let addr = serve_fixed(huge).await;
    let facilitator = HttpFacilitator::builder(format!("http://{addr}"))
        .max_reply_bytes(64 * 1024)
        .build()
        .unwrap();
    let err = facilitator.supported().await.unwrap_err();
    assert!(
        matches!(&err, FacilitatorError::InvalidReply { reason, .. } if reason.contains("larger than 65536")),
        "{err}"
    );
}

#[tokio::test]
async fn a_reply_of_the_wrong_shape_is_an_invalid_reply() {
    let addr = serve_fixed(r#"{"isValid":"yes"}"#).await;
    let facilitator = HttpFacilitator::new(format!("http://{addr}")).unwrap();
    let world = World::new().await;
    let request = world.paid_request().await;
    let err = facilitator.verify(&request).await.unwrap_err();
    assert!(
        matches!(&err, FacilitatorError::InvalidReply { call: FacilitatorCall::Verify, reason } if reason.contains("isValid")),
        "{err}"
    );
}

#[tokio::test]
async fn a_connection_that_cannot_be_established_hits_the_connect_timeout() {
    // A listener that never accepts, with a backlog of one: once its queue is full, the kernel
    // drops new SYNs and a connect hangs until the client gives up.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let connect = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(300), connect).await {
            fillers.push(stream);
        }
    }

    let facilitator = HttpFacilitator::builder(format!("http://{addr}"))
        .connect_timeout(Duration::from_millis(200))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = facilitator.supported().await.unwrap_err();
    assert!(
        matches!(err, FacilitatorError::Timeout { after, .. } if after == Duration::from_millis(200)),
        "{err}"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_headers_and_authorizations_stay_home() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let stolen = Arc::new(AtomicUsize::new(0));
    let thief = {
        let stolen = Arc::clone(&stolen);
        axum::Router::new().fallback(move || {
            stolen.fetch_add(1, Ordering::SeqCst);
            async { r#"{"success":true,"transaction":"","network":"lightning-regtest"}"# }
        })
    };
    let thief_addr = serve(thief).await;
    let redirector = axum::Router::new().fallback(move || async move {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [(http::header::LOCATION, format!("http://{thief_addr}/steal"))],
        )
    });
    let facilitator = HttpFacilitator::builder(format!("http://{}", serve(redirector).await))
        .header("x-api-key", "SECRET")
        .build()
        .unwrap();

    let world = World::new().await;
    let err = facilitator
        .settle(&world.paid_request().await)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FacilitatorError::Status {
                status: StatusCode::TEMPORARY_REDIRECT,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "nothing reached the redirect target"
    );
}

#[tokio::test]
async fn an_oversized_error_body_still_gives_an_excerpt() {
    // Not hex: excerpts redact long runs of hex digits.
    let huge: &'static str = Box::leak("X".repeat(100_000).into_boxed_str());
    let app = axum::Router::new()
        .fallback(move || async move { (StatusCode::INTERNAL_SERVER_ERROR, huge) });
    let facilitator = HttpFacilitator::builder(format!("http://{}", serve(app).await))
        .max_reply_bytes(1024)
        .build()
        .unwrap();
    match facilitator.supported().await.unwrap_err() {
        FacilitatorError::Status { body_excerpt, .. } => {
            assert!(body_excerpt.starts_with("XXXX"), "{body_excerpt}");
        }
        other => panic!("expected a status error, got {other}"),
    }
}

#[tokio::test]
async fn a_body_that_stalls_after_its_headers_hits_the_call_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).await;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
        stream.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let facilitator = HttpFacilitator::builder(format!("http://{addr}"))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = facilitator.supported().await.unwrap_err();
    assert!(
        matches!(err, FacilitatorError::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err}"
    );
}

#[tokio::test]
async fn answers_that_are_not_what_was_asked_fail_the_answer_check() {
    use x402_lightning::invoice::{RequirementsError, check_requirements_answer};
    let world = World::new().await;
    let asked = ask(PRICE_MSAT);
    let now = world.now();
    let mock_node = world.mock.node().node_id();

    let honest = world.requirements().await;
    assert!(check_requirements_answer(&asked, &honest, Some(&mock_node), now).is_ok());
    assert!(check_requirements_answer(&asked, &honest, None, now).is_ok());

    let unasked = faulty_requirements(&world, InvoiceFault::UnaskedAmount).await;
    assert_eq!(
        check_requirements_answer(&asked, &unasked, None, now),
        Err(RequirementsError::Amount {
            asked: PRICE_MSAT,
            got: unasked.max_amount_required
        })
    );

    let foreign = faulty_requirements(&world, InvoiceFault::ForeignPayTo).await;
    assert!(
        check_requirements_answer(&asked, &foreign, None, now).is_ok(),
        "nothing pinned"
    );
    assert!(matches!(
        check_requirements_answer(&asked, &foreign, Some(&mock_node), now),
        Err(RequirementsError::PayTo { got, .. }) if got == foreign.pay_to
    ));

    let mut other_network = honest.clone();
    other_network.network = Network::Testnet;
    assert!(matches!(
        check_requirements_answer(&asked, &other_network, None, now),
        Err(RequirementsError::Network {
            asked: Network::Regtest,
            got: Network::Testnet
        })
    ));

    let mut other_asset = honest.clone();
    other_asset.asset = "USDC".into();
    assert_eq!(
        check_requirements_answer(&asked, &other_asset, None, now),
        Err(RequirementsError::Asset("USDC".into()))
    );

    for fault in [
        InvoiceFault::WrongAmount,
        InvoiceFault::WrongNetwork,
        InvoiceFault::WrongPayee,
        InvoiceFault::Expired,
    ] {
        let bad = faulty_requirements(&world, fault).await;
        assert!(
            matches!(
                check_requirements_answer(&asked, &bad, Some(&mock_node), now),
                Err(RequirementsError::Invoice(_))
            ),
            "{fault:?}"
        );
    }
}

#[tokio::test]
async fn a_call_refused_for_its_token_leaves_the_fault_for_the_next_one() {
    let mock = MockFacilitator::builder()
        .require_bearer_token("s3cret")
        .start()
        .await
        .unwrap();
    mock.fail_next(FacilitatorCall::Supported, Fault::Garbage);
    let anonymous = HttpFacilitator::new(mock.url()).unwrap();
    assert!(anonymous.supported().await.is_err());
    assert_eq!(mock.calls()[0].fault, None, "the 401 took no fault");

    let authorized = HttpFacilitator::builder(mock.url())
        .bearer_token("s3cret")
        .build()
        .unwrap();
    let err = authorized.supported().await.unwrap_err();
    assert!(
        matches!(err, FacilitatorError::InvalidReply { .. }),
        "{err}"
    );
    let recorded = format!("{:?}", mock.calls()[1]);
    assert!(
        !recorded.contains("s3cret"),
        "recorded tokens are redacted in Debug"
    );
}

#[tokio::test]
async fn another_asset_is_invalid_payload() {
    // PROTOCOL.md Part 3, step 4: the fields are well formed (`asset` is `"BTC"`).
    let world = World::new().await;
    let mut request = world.paid_request().await;
    request.payment_requirements.asset = "USDC".into();
    assert_eq!(
        world.invalid_reason(&request).await,
        reason::INVALID_PAYLOAD
    );
}

#[tokio::test]
async fn pay_to_is_compared_as_a_key_not_as_text() {
    let world = World::new().await;
    let mut request = world.paid_request().await;
    request.payment_requirements.pay_to = request.payment_requirements.pay_to.to_uppercase();
    assert!(world.facilitator.verify(&request).await.unwrap().is_valid);
    assert!(world.facilitator.settle(&request).await.unwrap().success);
}

#[tokio::test]
async fn recording_can_be_turned_off_for_long_runs() {
    let world = World::with(MockFacilitator::builder().record_calls(false)).await;
    let request = world.paid_request().await;
    assert!(world.facilitator.settle(&request).await.unwrap().success);
    assert!(world.mock.calls().is_empty());
    assert_eq!(world.mock.call_count(FacilitatorCall::Settle), 0);
}
