//! The paying client (`x402_lightning::client::Payer`) against the real thing over HTTP: the
//! facilitator service, an app behind the layer, both flows; hostile challenges, budgets and
//! the retry rules, each checked by what the wallet was asked to pay.

#![cfg(feature = "client")]

mod client_support;

use std::sync::Arc;
use std::time::Duration;

use client_support::{
    App, Challenge, ECHO_MSAT, Facilitator, Proxy, Recording, Replay, Script, WEATHER_MSAT,
};
use serde_json::{Value, json};
use x402_lightning::Network;
use x402_lightning::client::{
    Budget, Flow, PayError, PayEvent, Payer, PayerBuilder, Receipt, offer::NO_OFFER,
};
use x402_lightning::clock::ManualClock;
use x402_lightning::lnbtc::reason;

/// A payer on regtest (the test network) that retries at once.
fn payer() -> PayerBuilder {
    Payer::builder()
        .allow_network(Network::Regtest)
        .delivery(3, Duration::ZERO)
}

async fn get(payer: &Payer, url: &str) -> Result<reqwest::Response, PayError> {
    payer
        .client(reqwest::Client::new())
        .get(url)
        .send()
        .await
        .map_err(|err| match err {
            reqwest_middleware::Error::Middleware(err) => match err.downcast::<PayError>() {
                Ok(err) => err,
                Err(err) => panic!("not a payment error: {err}"),
            },
            reqwest_middleware::Error::Reqwest(err) => panic!("a transport error: {err}"),
        })
}

fn receipt(response: &reqwest::Response) -> Receipt {
    response
        .extensions()
        .get::<Receipt>()
        .cloned()
        .expect("a paid response carries its receipt")
}

// --- both flows, end to end -----------------------------------------------------------------

#[tokio::test]
async fn the_lnbtc_flow_is_paid_once_and_the_response_carries_the_receipt() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");

    let response = get(&payer, &format!("{}/weather", app.url))
        .await
        .expect("paid");
    assert_eq!(response.status(), 200);
    let receipt = receipt(&response);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["sky"], "clear");
    assert_eq!(receipt.flow, Flow::Lnbtc);
    assert_eq!(receipt.amount_msat, WEATHER_MSAT);
    assert_eq!(receipt.fee_msat, 0);
    assert_eq!(receipt.network, Network::Regtest.lnbtc_id());
    let settlement = receipt.settlement.expect("PAYMENT-RESPONSE decoded");
    assert!(settlement.success);
    assert_eq!(settlement.transaction, receipt.payment_hash);
    assert_eq!(wallet.pay_count(), 1);
}

#[tokio::test]
async fn a_post_bound_to_its_content_type_is_paid_and_its_body_reaches_the_handler() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let payer = payer()
        .wallet(facilitator.sim_wallet())
        .build()
        .expect("a payer");
    let response = payer
        .client(reqwest::Client::new())
        .post(format!("{}/echo", app.url))
        .header("content-type", "application/json")
        .body(r#"{"prompt":"hello lightning"}"#)
        .send()
        .await
        .expect("paid");
    assert_eq!(response.status(), 200);
    assert_eq!(receipt(&response).amount_msat, ECHO_MSAT);
    assert_eq!(
        response.text().await.expect("text"),
        r#"{"prompt":"hello lightning"}"#
    );
}

#[tokio::test]
async fn the_seed_flow_is_paid_from_the_account() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let account = facilitator.funded_account(50_000).await;
    let payer = payer().account(account.clone()).build().expect("a payer");

    let response = get(&payer, &format!("{}/weather", app.url))
        .await
        .expect("paid");
    assert_eq!(response.status(), 200);
    let receipt = receipt(&response);
    assert_eq!(receipt.flow, Flow::V1);
    assert_eq!(receipt.network, "lightning-regtest");
    let settlement = receipt.settlement.expect("X-PAYMENT-RESPONSE decoded");
    assert!(settlement.success);
    assert_eq!(settlement.payer.as_deref(), Some(account.id().as_str()));
    let balance = account
        .balance("lightning-regtest")
        .await
        .expect("a signed read");
    assert_eq!(balance.balance, 40_000);
}

#[tokio::test]
async fn with_both_a_wallet_and_an_account_the_preferred_flow_pays() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let account = facilitator.funded_account(50_000).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer()
        .wallet(wallet.clone())
        .account(account)
        .prefer(Flow::V1)
        .build()
        .expect("a payer");
    let response = get(&payer, &format!("{}/weather", app.url))
        .await
        .expect("paid");
    assert_eq!(receipt(&response).flow, Flow::V1);
    assert_eq!(wallet.pay_count(), 0, "the wallet was not asked");
}

#[tokio::test]
async fn a_free_route_is_fetched_without_paying() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let response = get(&payer, &format!("{}/", app.url)).await.expect("free");
    assert_eq!(response.status(), 200);
    assert!(response.extensions().get::<Receipt>().is_none());
    assert_eq!(wallet.pay_count(), 0);
}

#[tokio::test]
async fn progress_events_follow_a_payment() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let payer = payer()
        .wallet(facilitator.sim_wallet())
        .on_event(move |event| {
            let name = match event {
                PayEvent::Paying { .. } => "paying",
                PayEvent::Paid { .. } => "paid",
                PayEvent::Delivering { .. } => "delivering",
                _ => "other",
            };
            seen.lock().expect("not poisoned").push(name);
        })
        .build()
        .expect("a payer");
    get(&payer, &format!("{}/weather", app.url))
        .await
        .expect("paid");
    assert_eq!(
        *events.lock().expect("not poisoned"),
        ["paying", "paid", "delivering"]
    );
}

// --- budgets: refused before anything is paid ----------------------------------------------

#[tokio::test]
async fn a_price_above_the_maximum_per_payment_is_refused_before_paying() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer()
        .wallet(wallet.clone())
        .budget(Budget::default().max_per_payment_msat(WEATHER_MSAT - 1))
        .build()
        .expect("a payer");
    let err = get(&payer, &format!("{}/weather", app.url))
        .await
        .expect_err("over budget");
    let PayError::Budget(refusal) = &err else {
        panic!("a budget refusal, not {err}");
    };
    assert_eq!(refusal.limit(), "max-cost");
    assert!(!err.may_have_paid());
    assert_eq!(wallet.pay_count(), 0);
}

#[tokio::test]
async fn the_total_per_period_stops_the_third_payment() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let clock = ManualClock::at_unix(x402_lightning::invoice::unix_now());
    // Two payments of 10 sat with their 1 sat fee caps fit in 22 sat; a third does not.
    let payer = payer()
        .wallet(wallet.clone())
        .budget(Budget::default().max_per_period_msat(22_000, Duration::from_secs(3_600)))
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("a payer");
    let url = format!("{}/weather", app.url);
    get(&payer, &url).await.expect("the first fits");
    get(&payer, &url)
        .await
        .expect("the second fits (fees were 0)");
    let err = get(&payer, &url).await.expect_err("the third does not");
    assert!(
        matches!(&err, PayError::Budget(refusal) if refusal.limit() == "per-period"),
        "{err}"
    );
    assert_eq!(wallet.pay_count(), 2);
}

#[tokio::test]
async fn an_origin_off_the_allow_list_is_refused_before_paying() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer()
        .wallet(wallet.clone())
        .budget(
            Budget::default()
                .allow_origin("https://api.example.com")
                .expect("an origin"),
        )
        .build()
        .expect("a payer");
    let err = get(&payer, &format!("{}/weather", app.url))
        .await
        .expect_err("not allowed");
    assert!(
        matches!(&err, PayError::Budget(refusal) if refusal.limit() == "origin"),
        "{err}"
    );
    assert_eq!(wallet.pay_count(), 0);
}

// --- hostile or stale challenges: refused before anything is paid ---------------------------

/// A replay server and the app whose challenges are bound to the replay server's URL, so an
/// untouched challenge served by the replay server is a valid one.
async fn replay_setup(facilitator: &Facilitator) -> (Replay, App, Challenge) {
    let (listener, url) = Replay::bind().await;
    let replay = Replay::start(listener, url.clone());
    let app = App::start(facilitator, Some(&url)).await;
    let challenge = Challenge::fetch(&format!("{}/weather", app.url)).await;
    (replay, app, challenge)
}

async fn refused_before_paying(challenge: &Challenge, replay: &Replay, payer: &Payer) -> PayError {
    replay.serve(challenge);
    let err = get(payer, &format!("{}/weather", replay.url))
        .await
        .expect_err("refused");
    assert!(!err.may_have_paid(), "{err}");
    assert_eq!(replay.paid(), 0, "no proof was sent");
    err
}

fn unpayable_reason(err: &PayError) -> &'static str {
    match err {
        PayError::Unpayable(unpayable) => unpayable.reason,
        other => panic!("an unpayable offer, not {other}"),
    }
}

#[tokio::test]
async fn an_untouched_replayed_challenge_is_payable() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    replay.serve(&challenge);
    let payer = payer()
        .wallet(Recording::scripted(Script::Fail))
        .build()
        .expect("a payer");
    let request = reqwest::Client::new()
        .get(format!("{}/weather", replay.url))
        .build()
        .expect("a request");
    let response = reqwest::Client::new()
        .execute(request.try_clone().expect("clonable"))
        .await
        .expect("answers");
    let quote = payer.quote(&request, response).await.expect("payable");
    assert_eq!(quote.offer.amount_msat, WEATHER_MSAT);
    assert_eq!(quote.max_fee_msat, 1_000);
}

#[tokio::test]
async fn a_challenge_bound_to_another_request_is_refused_before_paying() {
    let facilitator = Facilitator::start().await;
    let (replay, app, _) = replay_setup(&facilitator).await;
    // A challenge for `/echo`'s POST, served for a GET of `/weather`.
    let response = reqwest::Client::new()
        .post(format!("{}/echo", app.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("answers");
    let header = response
        .headers()
        .get("payment-required")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let other = Challenge {
        header,
        body: json!({ "x402Version": 1, "error": "", "accepts": [] }),
    };
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let err = refused_before_paying(&other, &replay, &payer).await;
    assert_eq!(unpayable_reason(&err), reason::REQUEST_MISMATCH);
    assert_eq!(wallet.pay_count(), 0);
}

#[tokio::test]
async fn a_wrong_payee_is_refused_before_paying() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let stranger = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    let tampered = challenge.lnbtc_changed(|required| {
        required["accepts"][0]["payTo"] = json!(stranger);
    });
    let err = refused_before_paying(&tampered, &replay, &payer).await;
    assert_eq!(unpayable_reason(&err), reason::INVOICE_PAYEE_MISMATCH);
    assert_eq!(wallet.pay_count(), 0);
}

#[tokio::test]
async fn an_amount_that_is_not_the_invoices_is_refused_before_paying() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let tampered = challenge.lnbtc_changed(|required| {
        required["accepts"][0]["amount"] = json!("1000");
    });
    let err = refused_before_paying(&tampered, &replay, &payer).await;
    assert_eq!(unpayable_reason(&err), reason::INVOICE_AMOUNT_MISMATCH);
    assert_eq!(wallet.pay_count(), 0);
}

#[tokio::test]
async fn an_expired_offer_is_refused_before_paying() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    // The invoices expire in 60 s: two minutes later they are stale.
    let later =
        ManualClock::at_unix(x402_lightning::invoice::unix_now() + Duration::from_secs(120));
    let payer = payer()
        .wallet(wallet.clone())
        .clock(Arc::new(later))
        .build()
        .expect("a payer");
    let err = refused_before_paying(&challenge, &replay, &payer).await;
    assert_eq!(unpayable_reason(&err), reason::INVOICE_EXPIRED);
    assert_eq!(wallet.pay_count(), 0);
}

#[tokio::test]
async fn a_402_reached_through_a_redirect_is_not_paid() {
    let facilitator = Facilitator::start().await;
    let app = App::start(&facilitator, None).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let err = get(&payer, &format!("{}/moved", app.url))
        .await
        .expect_err("another URL's 402");
    assert_eq!(
        unpayable_reason(&err),
        x402_lightning::client::offer::REDIRECTED
    );
    assert_eq!(wallet.pay_count(), 0);
}

#[tokio::test]
async fn a_network_the_client_does_not_pay_on_is_refused_before_paying() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    // No regtest: upstream's mainnet and testnet only.
    let payer = Payer::builder()
        .wallet(wallet.clone())
        .build()
        .expect("a payer");
    let err = refused_before_paying(&challenge, &replay, &payer).await;
    assert_eq!(unpayable_reason(&err), reason::UNSUPPORTED_NETWORK);
    assert_eq!(wallet.pay_count(), 0);
}

#[tokio::test]
async fn a_seed_flow_offer_whose_invoice_is_not_what_it_says_is_not_signed() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    let account = facilitator.funded_account(0).await;
    let payer = payer().account(account).build().expect("a payer");
    for (field, value, expected) in [
        (
            "maxAmountRequired",
            json!("1000"),
            x402_lightning::types::reason::INVOICE_AMOUNT,
        ),
        (
            "payTo",
            json!("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"),
            x402_lightning::types::reason::INVOICE_PAYEE,
        ),
        (
            "network",
            json!("lightning"),
            x402_lightning::types::reason::INVALID_NETWORK,
        ),
    ] {
        let tampered = challenge.v1_changed(|body| body["accepts"][0][field] = value);
        let err = refused_before_paying(&tampered, &replay, &payer).await;
        assert_eq!(unpayable_reason(&err), expected, "{field}");
    }
    let nothing = challenge.v1_changed(|body| body["accepts"] = json!([]));
    let err = refused_before_paying(&nothing, &replay, &payer).await;
    assert_eq!(unpayable_reason(&err), NO_OFFER);
}

// --- never twice for one challenge ----------------------------------------------------------

#[tokio::test]
async fn a_payment_in_flight_is_tracked_never_paid_again() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    replay.serve(&challenge);
    let wallet = Recording::scripted(Script::InFlight);
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let url = format!("{}/weather", replay.url);
    for _ in 0..3 {
        let err = get(&payer, &url).await.expect_err("in flight");
        assert!(matches!(err, PayError::InFlight { .. }), "{err}");
        assert!(err.may_have_paid());
    }
    assert_eq!(wallet.pay_count(), 1, "paid once");
    assert_eq!(
        wallet.tracks.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "then asked"
    );
    assert_eq!(replay.paid(), 0);
}

#[tokio::test]
async fn a_wallet_error_leaves_the_payment_unknown_and_it_is_not_paid_again() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    replay.serve(&challenge);
    let wallet = Recording::scripted(Script::Error);
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let url = format!("{}/weather", replay.url);
    let err = get(&payer, &url).await.expect_err("a wallet error");
    assert!(matches!(err, PayError::Wallet { .. }), "{err}");
    // The wallet cannot tell (track: None): still unknown, still not paid again.
    wallet.set(Script::Pay);
    let err = get(&payer, &url).await.expect_err("unknown");
    assert!(matches!(err, PayError::InFlight { .. }), "{err}");
    assert_eq!(wallet.pay_count(), 1);
}

#[tokio::test]
async fn a_payment_that_failed_for_good_may_be_tried_again() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    replay.serve(&challenge);
    let wallet = Recording::scripted(Script::Fail);
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let url = format!("{}/weather", replay.url);
    let err = get(&payer, &url).await.expect_err("failed");
    assert!(matches!(err, PayError::PaymentFailed { .. }), "{err}");
    assert!(!err.may_have_paid());
    let _ = get(&payer, &url).await.expect_err("failed again");
    assert_eq!(wallet.pay_count(), 2, "a failure moved no money");
}

/// An app behind a [`Proxy`], its challenges bound to the proxy's URL.
async fn proxy_setup(facilitator: &Facilitator) -> Proxy {
    let (listener, url) = Proxy::bind().await;
    let app = App::start(facilitator, Some(&url)).await;
    Proxy::start(listener, url, app.addr)
}

#[tokio::test]
async fn a_paid_request_lost_on_the_network_is_sent_again_with_the_same_preimage() {
    let facilitator = Facilitator::start().await;
    let proxy = proxy_setup(&facilitator).await;
    proxy
        .drop_paid
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");

    let response = get(&payer, &format!("{}/weather", proxy.url))
        .await
        .expect("served on the second try");
    assert_eq!(response.status(), 200);
    assert_eq!(wallet.pay_count(), 1, "paid once");
    let proofs = proxy.paid_requests();
    assert_eq!(proofs.len(), 2, "sent twice");
    assert_eq!(proofs[0], proofs[1], "with the same proof");
}

#[tokio::test]
async fn a_paid_request_that_never_arrives_hands_back_its_proof() {
    let facilitator = Facilitator::start().await;
    let proxy = proxy_setup(&facilitator).await;
    proxy
        .drop_paid
        .store(u32::MAX, std::sync::atomic::Ordering::SeqCst);
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let url = format!("{}/weather", proxy.url);

    let err = get(&payer, &url).await.expect_err("undelivered");
    let PayError::Undelivered { proof, receipt, .. } = &err else {
        panic!("undelivered, not {err}");
    };
    assert!(err.may_have_paid());
    assert_eq!(proxy.paid_requests().len(), 3, "three tries");
    assert_eq!(wallet.pay_count(), 1);
    assert!(
        !format!("{err:?}").contains(&proof.value),
        "Debug hides the proof"
    );

    // The network is back: the same proof buys the request.
    proxy
        .drop_paid
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let response = reqwest::Client::new()
        .get(&url)
        .header(proof.header, &proof.value)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    assert_eq!(receipt.amount_msat, WEATHER_MSAT);
}

#[tokio::test]
async fn a_refused_proof_is_reported_and_not_paid_again() {
    let facilitator = Facilitator::start().await;
    let proxy = proxy_setup(&facilitator).await;
    // The proxy spends the proof first: the client's own try meets `duplicate_settlement`.
    proxy
        .double_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");

    let err = get(&payer, &format!("{}/weather", proxy.url))
        .await
        .expect_err("refused");
    let PayError::Refused {
        status,
        reason,
        receipt,
    } = &err
    else {
        panic!("refused, not {err}");
    };
    assert_eq!(*status, 402);
    assert_eq!(reason, "duplicate_settlement");
    assert_eq!(receipt.amount_msat, WEATHER_MSAT);
    assert!(
        err.may_have_paid(),
        "an lnbtc payment is made before the proof is sent"
    );
    assert_eq!(wallet.pay_count(), 1, "not paid again");
}

#[tokio::test]
async fn a_refused_seed_flow_payment_is_reported_and_counted_as_spent() {
    let facilitator = Facilitator::start().await;
    let proxy = proxy_setup(&facilitator).await;
    let account = facilitator.funded_account(15_000).await;
    proxy
        .double_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let payer = payer().account(account.clone()).build().expect("a payer");
    let err = get(&payer, &format!("{}/weather", proxy.url))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, PayError::Refused { status: 402, .. }),
        "{err}"
    );
    // Whoever received the authorization had it paid: the client must not believe otherwise.
    assert!(err.may_have_paid());
    let balance = account.balance("lightning-regtest").await.expect("a read");
    assert_eq!(balance.balance, 5_000, "paid once, by the proxy's own try");
}

#[tokio::test]
async fn concurrent_requests_for_one_challenge_pay_it_once() {
    let facilitator = Facilitator::start().await;
    let (replay, _app, challenge) = replay_setup(&facilitator).await;
    replay.serve(&challenge);
    let wallet = Recording::paying_through(facilitator.sim_wallet());
    let payer = payer().wallet(wallet.clone()).build().expect("a payer");
    let url = format!("{}/weather", replay.url);
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let payer = payer.clone();
            let url = url.clone();
            tokio::spawn(async move { get(&payer, &url).await.map(|_| ()) })
        })
        .collect();
    for attempt in attempts {
        // The replay server refuses every proof; what matters is how often the wallet paid.
        let _ = attempt.await.expect("no panic");
    }
    assert_eq!(wallet.pay_count(), 1);
}
