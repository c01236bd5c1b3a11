#![cfg(feature = "client")]
//! [`LndWallet`] against the facilitator's LND REST simulator (`lnd_sim`), over real HTTPS with
//! the simulator's certificate pinned.

// The simulator is the facilitator's test code, held to that crate's MSRV (1.94), not ours.
#[allow(clippy::incompatible_msrv)]
#[path = "../facilitator/tests/lnd_sim/mod.rs"]
mod lnd_sim;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use serde_json::json;
use x402_lightning::Network;
use x402_lightning::client::wallet::{
    LndConfigError, LndWallet, LndWalletConfig, PaymentOutcome, Wallet, WalletError, check_preimage,
};
use x402_lightning_facilitator::node::PaymentStatus;

use crate::lnd_sim::{
    CertShape, Fault, INVOICE_MACAROON_PERMISSIONS, LndSim, MACAROON, Outcome, TlsIdentity, hex,
    track_path,
};

/// The most routing fee the tests allow, in msat.
const MAX_FEE_MSAT: u64 = 1_000;

/// The payment timeout of a payment expected to stay undecided: what the wallet waits.
const PAYMENT_WAIT: Duration = Duration::from_millis(300);

/// A config that reaches `sim`: its URL, macaroon and pinned certificate; a call timeout never
/// reached by a call that is answered.
fn config_for(sim: &LndSim) -> LndWalletConfig {
    let mut config = LndWalletConfig::new(sim.url(), sim.macaroon_hex());
    config.tls_cert_pem = Some(sim.tls.cert_pem.clone());
    config.timeout = Duration::from_secs(10);
    config
}

fn wallet_for(sim: &LndSim) -> LndWallet {
    LndWallet::new(config_for(sim)).expect("a valid config")
}

/// LND's `{"result": Payment}` line for the payment of `hash`, `status` with `preimage`, 1 msat
/// of fees.
fn update(hash: &[u8; 32], status: &str, preimage: &[u8; 32]) -> String {
    let payment = json!({
        "payment_hash": hex(hash),
        "status": status,
        "payment_preimage": hex(preimage),
        "fee_msat": "1",
    });
    format!("{}\n", json!({ "result": payment }))
}

/// The `Grpc-Metadata-macaroon` header of each request to `path` (empty when missing).
fn macaroons_sent_to(sim: &LndSim, path: &str) -> Vec<String> {
    sim.requests_to(path)
        .iter()
        .map(|request| {
            request
                .headers
                .get("grpc-metadata-macaroon")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// A valid regtest invoice without an amount.
fn invoice_without_amount() -> String {
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[0x42; 32]).expect("a secret key");
    lightning_invoice::InvoiceBuilder::new(lightning_invoice::Currency::Regtest)
        .description("any amount".to_owned())
        .payment_hash(sha256::Hash::hash(&[1; 32]))
        .payment_secret(lightning_invoice::PaymentSecret([2; 32]))
        .current_timestamp()
        .min_final_cltv_expiry_delta(18)
        .build_signed(|message| secp.sign_ecdsa_recoverable(message, &key))
        .expect("a signed invoice")
        .to_string()
}

#[tokio::test]
async fn a_payment_that_succeeds_is_paid_with_a_checked_preimage_and_its_fee() {
    let sim = LndSim::start(Network::Regtest).await;
    let wallet = wallet_for(&sim);
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);

    let outcome = wallet.pay(&invoice, MAX_FEE_MSAT).await.expect("an answer");

    assert_eq!(
        outcome,
        PaymentOutcome::Paid {
            preimage,
            fee_msat: 250
        }
    );
    check_preimage(&preimage, &hash).expect("the preimage pays the invoice");
    assert_eq!(
        sim.payment_status(&hash),
        Some(PaymentStatus::Succeeded {
            preimage,
            fee_msat: 250
        })
    );
    // The documented request: int64 fee limit as a string, the default 60 s for LND to try,
    // only the final update.
    let [send] = &sim.requests_to("/v2/router/send")[..] else {
        panic!("one send: {:?}", sim.requests());
    };
    let expected = json!({
        "payment_request": invoice,
        "fee_limit_msat": MAX_FEE_MSAT.to_string(),
        "timeout_seconds": 60,
        "no_inflight_updates": true,
    });
    assert_eq!((send.method.as_str(), send.json()), ("POST", expected));
    // Decided at once: nothing to track.
    assert!(sim.requests_to(&track_path(&hash)).is_empty());
}

#[tokio::test]
async fn a_payment_that_fails_is_failed_with_lnds_reason() {
    let sim = LndSim::start(Network::Regtest).await;
    let wallet = wallet_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.next_payment_outcome(Outcome::Fail {
        reason: "FAILURE_REASON_INSUFFICIENT_BALANCE".to_owned(),
    });

    let outcome = wallet.pay(&invoice, MAX_FEE_MSAT).await.expect("an answer");

    assert_eq!(
        outcome,
        PaymentOutcome::Failed {
            reason: "FAILURE_REASON_INSUFFICIENT_BALANCE".to_owned()
        }
    );
    assert_eq!(wallet.track(&hash).await.expect("an answer"), Some(outcome));
}

#[tokio::test]
async fn a_payment_whose_fee_would_exceed_the_limit_fails_with_no_route() {
    let sim = LndSim::start(Network::Regtest).await;
    let wallet = wallet_for(&sim);
    // The simulator's fee is 2 000 msat, over the limit of 1 000.
    let (invoice, _, _) = sim.external_invoice(Network::Regtest, 2_000_000);

    let outcome = wallet.pay(&invoice, MAX_FEE_MSAT).await.expect("an answer");

    assert_eq!(
        outcome,
        PaymentOutcome::Failed {
            reason: "FAILURE_REASON_NO_ROUTE".to_owned()
        }
    );
}

#[tokio::test]
async fn a_payment_still_in_flight_after_the_payment_timeout_is_in_flight_and_track_learns_the_outcome()
 {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = config_for(&sim);
    config.payment_timeout = PAYMENT_WAIT;
    let wallet = LndWallet::new(config).expect("a valid config");
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);
    sim.payment_outcome(hash, Outcome::Pending);

    let started = Instant::now();
    let outcome = wallet.pay(&invoice, MAX_FEE_MSAT).await.expect("an answer");
    let waited = started.elapsed();

    assert_eq!(outcome, PaymentOutcome::InFlight);
    assert!(
        waited >= PAYMENT_WAIT && waited < PAYMENT_WAIT + Duration::from_secs(2),
        "{waited:?}"
    );
    // LND is told whole seconds, rounded up.
    assert_eq!(
        sim.requests_to("/v2/router/send")[0].json()["timeout_seconds"],
        1
    );
    // The wallet asked LND for the payment's state once the wait was over.
    let track = track_path(&hash);
    assert_eq!(sim.requests_to(&track).len(), 1);
    assert_eq!(sim.payment_status(&hash), Some(PaymentStatus::InFlight));
    assert_eq!(
        wallet.track(&hash).await.expect("an answer"),
        Some(PaymentOutcome::InFlight)
    );

    assert!(sim.resolve_payment(&hash, true));
    let tracked = wallet.track(&hash).await.expect("an answer");

    assert_eq!(
        tracked,
        Some(PaymentOutcome::Paid {
            preimage,
            fee_msat: 250
        })
    );
    let tracks = sim.requests_to(&track);
    assert_eq!(tracks.len(), 3);
    assert!(
        tracks
            .iter()
            .all(|request| request.method == "GET" && request.query == "no_inflight_updates=false"),
        "{tracks:?}"
    );
    assert_eq!(macaroons_sent_to(&sim, &track), vec![sim.macaroon_hex(); 3]);
}

#[tokio::test]
async fn a_payment_that_fails_while_in_flight_is_failed_when_tracked() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = config_for(&sim);
    config.payment_timeout = PAYMENT_WAIT;
    let wallet = LndWallet::new(config).expect("a valid config");
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.payment_outcome(hash, Outcome::Pending);
    let outcome = wallet.pay(&invoice, MAX_FEE_MSAT).await.expect("an answer");
    assert_eq!(outcome, PaymentOutcome::InFlight);

    assert!(sim.resolve_payment(&hash, false));

    assert_eq!(
        wallet.track(&hash).await.expect("an answer"),
        Some(PaymentOutcome::Failed {
            reason: "FAILURE_REASON_NO_ROUTE".to_owned()
        })
    );
}

#[tokio::test]
async fn track_of_a_payment_never_started_is_none_and_the_hash_is_url_safe_base64() {
    let sim = LndSim::start(Network::Regtest).await;
    let wallet = wallet_for(&sim);
    // Standard base64 of these bytes is all `/`, which would split the path.
    let hash = [0xff; 32];

    let tracked = wallet.track(&hash).await.expect("an answer");

    assert_eq!(tracked, None);
    let path = track_path(&hash);
    assert!(path.ends_with("___8="), "{path}");
    let tracks = sim.requests_to(&path);
    assert_eq!(tracks.len(), 1, "{:?}", sim.requests());
    assert_eq!(tracks[0].method, "GET");
    assert_eq!(tracks[0].query, "no_inflight_updates=false");
}

/// Only LND's own `payment isn't initiated` means the payment never started: a 404 of a proxy
/// or an unknown route is an error, never "safe to pay".
#[tokio::test]
async fn track_answered_404_without_lnds_message_is_an_error() {
    let sim = LndSim::start(Network::Regtest).await;
    let wallet = wallet_for(&sim);
    let hash = [0x0d; 32];
    let not_found = Fault::Error {
        status: 404,
        message: "Not Found".to_owned(),
    };
    sim.fail(&track_path(&hash), not_found);

    let err = wallet.track(&hash).await.expect_err("not LND's answer");

    assert!(
        matches!(&err, WalletError::Status { status: 404, message } if message == "Not Found"),
        "{err:?}"
    );
}

#[tokio::test]
async fn track_of_a_node_that_never_answers_times_out() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = config_for(&sim);
    config.timeout = Duration::from_millis(300);
    let wallet = LndWallet::new(config).expect("a valid config");
    let hash = [9; 32];
    sim.fail(&track_path(&hash), Fault::Hang);

    let err = wallet.track(&hash).await.expect_err("no answer");

    assert!(matches!(err, WalletError::Timeout(300)), "{err:?}");
}

/// With `no_inflight_updates`, a node that never answers looks like an undecided payment until
/// LND is asked: it does not know the payment, so the outcome is unknown (a timeout), not a
/// verdict and not "in flight".
#[tokio::test]
async fn a_payment_the_node_never_answers_times_out_without_a_verdict() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = config_for(&sim);
    config.payment_timeout = PAYMENT_WAIT;
    let wallet = LndWallet::new(config).expect("a valid config");
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.fail("/v2/router/send", Fault::Hang);

    let err = wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect_err("no answer");

    assert!(matches!(err, WalletError::Timeout(300)), "{err:?}");
    assert_eq!(sim.requests_to(&track_path(&hash)).len(), 1);
}

#[tokio::test]
async fn a_payment_whose_node_hangs_on_every_call_times_out_on_the_call_timeout() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = config_for(&sim);
    config.payment_timeout = PAYMENT_WAIT;
    config.timeout = Duration::from_millis(200);
    let wallet = LndWallet::new(config).expect("a valid config");
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.fail("/v2/router/send", Fault::Hang);
    sim.fail(&track_path(&hash), Fault::Hang);

    let err = wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect_err("no answer");

    assert!(matches!(err, WalletError::Timeout(200)), "{err:?}");
}

#[tokio::test]
async fn a_server_with_another_certificate_is_refused_before_any_request() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = config_for(&sim);
    config.tls_cert_pem = Some(TlsIdentity::generate(CertShape::Leaf).cert_pem);
    let wallet = LndWallet::new(config).expect("a valid config");
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);

    let paid = wallet.pay(&invoice, MAX_FEE_MSAT).await;
    let tracked = wallet.track(&hash).await;

    assert!(matches!(paid, Err(WalletError::Unreachable(_))), "{paid:?}");
    assert!(
        matches!(tracked, Err(WalletError::Unreachable(_))),
        "{tracked:?}"
    );
    assert!(sim.requests().is_empty(), "no request reached the node");
    assert_eq!(sim.payment_status(&hash), None);
}

#[tokio::test]
async fn a_server_is_not_trusted_through_the_system_roots_alone() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = config_for(&sim);
    config.tls_cert_pem = None;
    let wallet = LndWallet::new(config).expect("a valid config");

    let err = wallet.track(&[1; 32]).await.expect_err("self-signed");

    assert!(matches!(err, WalletError::Unreachable(_)), "{err:?}");
    assert!(sim.requests().is_empty());
}

/// LND's auto-generated `tls.cert` is a self-signed CA certificate (`IsCA: true`), which
/// webpki refuses as a server certificate even as the only root: the wallet pins it instead.
#[tokio::test]
async fn lnds_self_signed_ca_certificate_is_pinned() {
    let sim = LndSim::start_with(Network::Regtest, CertShape::LndSelfSignedCa).await;
    let wallet = wallet_for(&sim);
    let (invoice, _, preimage) = sim.external_invoice(Network::Regtest, 250_000);

    let outcome = wallet.pay(&invoice, MAX_FEE_MSAT).await.expect("an answer");

    assert_eq!(
        outcome,
        PaymentOutcome::Paid {
            preimage,
            fee_msat: 250
        }
    );
}

#[tokio::test]
async fn a_preimage_that_does_not_pay_the_invoice_is_garbage() {
    let sim = LndSim::start(Network::Regtest).await;
    let wallet = wallet_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    let wrong = update(&hash, "SUCCEEDED", &[5; 32]);
    for path in ["/v2/router/send".to_owned(), track_path(&hash)] {
        sim.fail(
            &path,
            Fault::Stream {
                chunks: vec![wrong.clone().into()],
                hold_open: false,
            },
        );
    }

    let paid = wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect_err("a wrong preimage");
    let tracked = wallet.track(&hash).await.expect_err("a wrong preimage");

    for err in [paid, tracked] {
        assert!(
            matches!(&err, WalletError::Garbage(message) if message.contains("payment hash")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn the_macaroon_is_sent_on_every_call_and_never_in_debug_output() {
    let sim = LndSim::start(Network::Regtest).await;
    let config = config_for(&sim);
    let wallet = LndWallet::new(config.clone()).expect("a valid config");
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);

    wallet.pay(&invoice, MAX_FEE_MSAT).await.expect("paid");
    wallet.track(&hash).await.expect("tracked");

    let macaroon = sim.macaroon_hex();
    assert_eq!(macaroons_sent_to(&sim, "/v2/router/send"), [macaroon]);
    assert_eq!(macaroons_sent_to(&sim, &track_path(&hash)), [macaroon]);
    for text in [
        format!("{config:?}"),
        format!("{config:#?}"),
        format!("{wallet:?}"),
        format!("{wallet:#?}"),
    ] {
        assert!(!text.contains(macaroon), "{text}");
        assert!(text.contains(&sim.url()), "{text}");
    }
}

#[tokio::test]
async fn a_wrong_macaroon_gets_lnds_verification_error() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = config_for(&sim);
    config.macaroon_hex = "0201036c6e64".to_owned();
    let wallet = LndWallet::new(config).expect("a valid config");
    let (invoice, _, _) = sim.external_invoice(Network::Regtest, 250_000);

    let err = wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect_err("a wrong macaroon");

    assert!(
        matches!(&err, WalletError::Status { status: 500, message } if message.contains("verification failed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_invoice_macaroon_cannot_pay() {
    let sim = LndSim::start(Network::Regtest).await;
    sim.grant_only(INVOICE_MACAROON_PERMISSIONS);
    let wallet = wallet_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);

    let paid = wallet.pay(&invoice, MAX_FEE_MSAT).await;
    let tracked = wallet.track(&hash).await;

    for result in [paid.map(Some), tracked] {
        assert!(
            matches!(&result, Err(WalletError::Status { status: 500, message }) if message == "permission denied"),
            "{result:?}"
        );
    }
    assert_eq!(sim.payment_status(&hash), None);
}

#[tokio::test]
async fn paying_an_invoice_already_paid_is_lnds_error_not_a_verdict() {
    let sim = LndSim::start(Network::Regtest).await;
    let wallet = wallet_for(&sim);
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);
    wallet.pay(&invoice, MAX_FEE_MSAT).await.expect("paid");

    let err = wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect_err("already paid");

    assert!(
        matches!(&err, WalletError::Status { status: 409, message } if message == "invoice is already paid"),
        "{err:?}"
    );
    // Tracking tells what the error did not.
    assert_eq!(
        wallet.track(&hash).await.expect("an answer"),
        Some(PaymentOutcome::Paid {
            preimage,
            fee_msat: 250
        })
    );
}

#[tokio::test]
async fn text_that_is_not_a_bolt11_invoice_with_an_amount_is_refused_without_asking_the_node() {
    let sim = LndSim::start(Network::Regtest).await;
    let wallet = wallet_for(&sim);

    let not_bolt11 = wallet.pay("lnbcrt1notaninvoice", MAX_FEE_MSAT).await;
    let no_amount = wallet.pay(&invoice_without_amount(), MAX_FEE_MSAT).await;

    assert!(
        matches!(not_bolt11, Err(WalletError::Refused(_))),
        "{not_bolt11:?}"
    );
    assert!(
        matches!(&no_amount, Err(WalletError::Refused(message)) if message.contains("amount")),
        "{no_amount:?}"
    );
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn the_wallet_pays_behind_the_wallet_trait() {
    let sim = LndSim::start(Network::Regtest).await;
    let wallet: Arc<dyn Wallet> = Arc::new(wallet_for(&sim));
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);

    let outcome = wallet.pay(&invoice, MAX_FEE_MSAT).await.expect("an answer");

    let paid = PaymentOutcome::Paid {
        preimage,
        fee_msat: 250,
    };
    assert_eq!(outcome, paid);
    assert_eq!(wallet.track(&hash).await.expect("an answer"), Some(paid));
}

#[tokio::test]
async fn config_from_files_hex_encodes_the_binary_macaroon_and_pins_the_certificate() {
    let sim = LndSim::start(Network::Regtest).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let files = sim.write_credentials(dir.path());

    let config = LndWalletConfig::from_files(sim.url(), &files.macaroon, Some(&files.tls_cert))
        .expect("readable files");
    let missing =
        LndWalletConfig::from_files(sim.url(), &dir.path().join("missing.macaroon"), None)
            .expect_err("no such file");

    assert_eq!(config.macaroon_hex, hex(MACAROON));
    assert_eq!(config.tls_cert_pem.as_deref(), Some(&sim.tls.cert_pem[..]));
    assert_eq!(config.timeout, LndWalletConfig::DEFAULT_TIMEOUT);
    assert_eq!(
        config.payment_timeout,
        LndWalletConfig::DEFAULT_PAYMENT_TIMEOUT
    );
    match missing {
        LndConfigError::ReadFile { path, .. } => assert!(path.ends_with("missing.macaroon")),
        other => panic!("not a read error: {other:?}"),
    }
    let wallet = LndWallet::new(config).expect("a valid config");
    assert_eq!(wallet.track(&[3; 32]).await.expect("an answer"), None);
}

#[test]
fn unusable_configs_are_refused_when_building() {
    let good = LndWalletConfig::new("https://127.0.0.1:8080", hex(MACAROON));
    assert!(LndWallet::new(good.clone()).is_ok());

    for url in [
        "lnd:10009",
        "unix:///var/run/lnd.sock",
        "https://lnd:8080/#rest",
        "https://admin@lnd:8080",
    ] {
        let mut config = good.clone();
        config.url = url.to_owned();
        assert!(
            matches!(LndWallet::new(config), Err(LndConfigError::Url(_))),
            "{url}"
        );
    }
    for macaroon in ["", "0x0201", "02010", "macaroon"] {
        let mut config = good.clone();
        config.macaroon_hex = macaroon.to_owned();
        assert!(
            matches!(LndWallet::new(config), Err(LndConfigError::Macaroon(_))),
            "{macaroon:?}"
        );
    }
    let mut not_pem = good.clone();
    not_pem.tls_cert_pem = Some(b"not a certificate".to_vec());
    assert!(matches!(
        LndWallet::new(not_pem),
        Err(LndConfigError::TlsCert(_))
    ));
    let mut cert_over_http = good.clone();
    cert_over_http.url = "http://127.0.0.1:8080".to_owned();
    cert_over_http.tls_cert_pem = Some(TlsIdentity::generate(CertShape::Leaf).cert_pem);
    assert!(matches!(
        LndWallet::new(cert_over_http),
        Err(LndConfigError::TlsCert(_))
    ));
    let mut no_time = good;
    no_time.payment_timeout = Duration::ZERO;
    assert!(matches!(
        LndWallet::new(no_time),
        Err(LndConfigError::PaymentTimeout(_))
    ));
}
