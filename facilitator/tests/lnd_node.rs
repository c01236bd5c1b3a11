//! [`LndNode`] against an LND REST simulator (`lnd_sim`) speaking LND's documented shapes over
//! real HTTPS.

mod lnd_sim;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE as BASE64_URL};
use bitcoin::hashes::{Hash as _, sha256};
use serde_json::json;
use x402_lightning::Network;
use x402_lightning::lnbtc::invoice::decode;
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning_facilitator::node::lnd::LndConfigError;
use x402_lightning_facilitator::node::{
    Cancelled, InvoiceDescription, InvoiceLookup, InvoiceRequest, InvoiceState, LightningNode,
    LndConfig, LndNode, NodeError, PaymentRequest, PaymentStatus,
};

use crate::lnd_sim::{
    CertShape, FACILITATOR_PERMISSIONS, Fault, INVOICE_MACAROON_PERMISSIONS, LndSim, MACAROON,
    Outcome, TlsIdentity, hex, track_path,
};

fn request(network: Network) -> InvoiceRequest {
    InvoiceRequest {
        network,
        amount_msat: 123_456,
        description: InvoiceDescription::Hash([0xab; 32]),
        expiry_secs: 300,
    }
}

fn node_for(sim: &LndSim) -> LndNode {
    LndNode::new(sim.config()).expect("a valid config")
}

#[tokio::test]
async fn mints_an_invoice_with_the_exact_terms_through_add_invoice() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let mut wanted = request(Network::Regtest);
    let description_hash: [u8; 32] = std::array::from_fn(|i| i as u8);
    wanted.description = InvoiceDescription::Hash(description_hash);

    let text = node.create_invoice(&wanted).await.expect("an invoice");

    let invoice = decode(&text).expect("a valid BOLT11 invoice");
    assert_eq!(
        Network::from_currency(&invoice.currency),
        Some(Network::Regtest)
    );
    assert_eq!(invoice.amount_msat, Some(123_456));
    assert_eq!(invoice.description_hash, Some(description_hash));
    assert_eq!(invoice.expiry_secs, 300);
    assert_eq!(invoice.payee, sim.node_id());
    assert_eq!(sim.minted(), vec![text]);

    let posts = sim.requests_to("/v1/invoices");
    assert_eq!(posts.len(), 1);
    let post = &posts[0];
    assert_eq!(post.method, "POST");
    assert_eq!(
        post.headers["grpc-metadata-macaroon"].as_bytes(),
        hex(MACAROON).as_bytes()
    );
    assert_eq!(
        post.json(),
        serde_json::json!({
            "value_msat": "123456",
            "description_hash": BASE64.encode(description_hash),
            "expiry": "300",
        })
    );
    // Every call carried the macaroon, getinfo's too.
    assert!(sim.requests().iter().all(|request| {
        request
            .headers
            .get("grpc-metadata-macaroon")
            .map(|v| v.as_bytes())
            == Some(sim.macaroon_hex().as_bytes())
    }));
}

#[tokio::test]
async fn node_id_comes_from_getinfo_and_is_fetched_once() {
    let sim = LndSim::start(Network::Testnet).await;
    let node = node_for(&sim);

    assert_eq!(node.node_id().await.expect("node id"), sim.node_id());
    assert_eq!(node.node_id().await.expect("node id"), sim.node_id());
    node.create_invoice(&request(Network::Testnet))
        .await
        .expect("an invoice");

    let getinfo = sim.requests_to("/v1/getinfo");
    assert_eq!(getinfo.len(), 1);
    assert_eq!(getinfo[0].method, "GET");
    assert_eq!(sim.requests().len(), 2);
}

#[tokio::test]
async fn a_failed_getinfo_is_not_cached() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    sim.fail(
        "/v1/getinfo",
        Fault::Error {
            status: 503,
            message: "waiting to start, RPC services not available".to_owned(),
        },
    );
    assert!(matches!(
        node.node_id().await,
        Err(NodeError::Status { status: 503, .. })
    ));

    sim.clear_faults();
    assert_eq!(node.node_id().await.expect("node id"), sim.node_id());
}

#[tokio::test]
async fn a_node_on_another_network_is_refused_before_minting() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);

    let err = node
        .create_invoice(&request(Network::Bitcoin))
        .await
        .expect_err("regtest node, mainnet invoice");

    assert!(
        matches!(&err, NodeError::Refused(message) if message.contains("regtest")),
        "{err}"
    );
    assert!(sim.requests_to("/v1/invoices").is_empty());
    assert!(sim.minted().is_empty());
}

#[tokio::test]
async fn a_zero_amount_is_refused_without_asking_the_node() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let mut zero = request(Network::Regtest);
    zero.amount_msat = 0;

    let err = node.create_invoice(&zero).await.expect_err("0 msat");

    assert!(matches!(err, NodeError::Refused(_)), "{err}");
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn a_server_with_another_certificate_is_unreachable() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = sim.config();
    config.tls_cert_pem = Some(TlsIdentity::generate(CertShape::Leaf).cert_pem);
    let node = LndNode::new(config).expect("a valid config");

    let err = node.node_id().await.expect_err("untrusted certificate");

    assert!(matches!(err, NodeError::Unreachable(_)), "{err}");
    assert!(sim.requests().is_empty(), "no request reached the handler");
    // The same server with its own certificate configured works.
    assert_eq!(
        node_for(&sim).node_id().await.expect("node id"),
        sim.node_id()
    );
}

#[tokio::test]
async fn a_server_is_not_trusted_through_the_system_roots_alone() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = sim.config();
    config.tls_cert_pem = None;
    let node = LndNode::new(config).expect("a valid config");

    let err = node
        .node_id()
        .await
        .expect_err("self-signed, not configured");

    assert!(matches!(err, NodeError::Unreachable(_)), "{err}");
    assert!(sim.requests().is_empty());
}

/// LND's auto-generated `tls.cert` is a self-signed CA certificate (`IsCA: true`), which
/// webpki refuses as a server certificate (`CaUsedAsEndEntity`) even when it is the trusted
/// root: the node pins the configured certificate instead.
#[tokio::test]
async fn lnds_self_signed_ca_certificate_is_trusted() {
    let sim = LndSim::start_with(Network::Regtest, CertShape::LndSelfSignedCa).await;
    let node = node_for(&sim);

    assert_eq!(node.node_id().await.expect("node id"), sim.node_id());
}

#[tokio::test]
async fn a_wrong_macaroon_gets_lnds_verification_error() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = sim.config();
    config.macaroon_hex = "0201036c6e6400".to_owned();
    let node = LndNode::new(config).expect("a valid config");

    let err = node.node_id().await.expect_err("wrong macaroon");

    match err {
        NodeError::Status { status, message } => {
            assert_eq!(status, 500);
            assert_eq!(
                message,
                "verification failed: signature mismatch after caveat verification"
            );
        }
        other => panic!("expected a status, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_status_carries_lnds_message() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    node.node_id().await.expect("node id");
    sim.fail(
        "/v1/invoices",
        Fault::Error {
            status: 403,
            message: "permission denied".to_owned(),
        },
    );

    let err = node
        .create_invoice(&request(Network::Regtest))
        .await
        .expect_err("403");

    assert!(
        matches!(&err, NodeError::Status { status: 403, message } if message == "permission denied"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_long_error_message_is_truncated_and_stripped_of_control_characters() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    sim.fail(
        "/v1/getinfo",
        Fault::Error {
            status: 500,
            message: format!("line\nbreak{}", "x".repeat(10_000)),
        },
    );

    let err = node.node_id().await.expect_err("500");

    let NodeError::Status {
        status: 500,
        message,
    } = err
    else {
        panic!("expected a 500, got {err:?}");
    };
    assert!(message.starts_with("line break"), "{message}");
    assert!(
        message.chars().count() <= 200,
        "{} chars",
        message.chars().count()
    );
}

#[tokio::test]
async fn an_error_status_without_lnds_json_carries_the_status_reason() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    sim.fail(
        "/v1/getinfo",
        Fault::Raw {
            status: 502,
            body: "<html>bad gateway</html>".into(),
        },
    );

    let err = node.node_id().await.expect_err("502");

    assert!(
        matches!(&err, NodeError::Status { status: 502, message } if message == "Bad Gateway"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_2xx_that_is_not_json_is_garbage() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    sim.fail(
        "/v1/getinfo",
        Fault::Raw {
            status: 200,
            body: "<html>hello</html>".into(),
        },
    );

    let err = node.node_id().await.expect_err("not JSON");

    assert!(matches!(err, NodeError::Garbage(_)), "{err:?}");
}

#[tokio::test]
async fn a_getinfo_without_a_public_key_or_bitcoin_chain_is_garbage() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let answers = [
        serde_json::json!({"identity_pubkey": "02abcd", "chains": [{"chain": "bitcoin", "network": "regtest"}]}),
        serde_json::json!({"identity_pubkey": sim.node_id().to_string(), "chains": []}),
        serde_json::json!({"chains": [{"chain": "bitcoin", "network": "regtest"}]}),
    ];
    for answer in answers {
        sim.fail(
            "/v1/getinfo",
            Fault::Raw {
                status: 200,
                body: answer.to_string().into(),
            },
        );

        let err = node.node_id().await.expect_err("garbage getinfo");

        assert!(matches!(err, NodeError::Garbage(_)), "{answer}: {err:?}");
    }
}

#[tokio::test]
async fn an_invoice_answer_without_payment_request_is_garbage() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    node.node_id().await.expect("node id");
    let answers = [
        serde_json::json!({"r_hash": BASE64.encode([1u8; 32]), "add_index": "1"}),
        serde_json::json!({"r_hash": BASE64.encode([1u8; 32]), "payment_request": ""}),
        serde_json::json!({"payment_request": 42}),
    ];
    for answer in answers {
        sim.fail(
            "/v1/invoices",
            Fault::Raw {
                status: 200,
                body: answer.to_string().into(),
            },
        );

        let err = node
            .create_invoice(&request(Network::Regtest))
            .await
            .expect_err("garbage AddInvoiceResponse");

        assert!(matches!(err, NodeError::Garbage(_)), "{answer}: {err:?}");
    }
}

#[tokio::test]
async fn an_answer_over_one_mib_is_garbage() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    node.node_id().await.expect("node id");
    // Valid JSON with a payment request: only its size is wrong.
    let huge = serde_json::json!({
        "payment_request": "lnbcrt1",
        "padding": "x".repeat(2 << 20),
    });
    sim.fail(
        "/v1/invoices",
        Fault::Raw {
            status: 200,
            body: huge.to_string().into(),
        },
    );

    let err = node
        .create_invoice(&request(Network::Regtest))
        .await
        .expect_err("2 MiB answer");

    assert!(matches!(err, NodeError::Garbage(_)), "{err:?}");
}

#[tokio::test]
async fn a_node_that_never_answers_times_out() {
    let sim = LndSim::start(Network::Regtest).await;
    let mut config = sim.config();
    config.timeout = Duration::from_millis(300);
    let node = LndNode::new(config).expect("a valid config");
    sim.fail("/v1/getinfo", Fault::Hang);

    let err = node.node_id().await.expect_err("no answer");

    assert!(matches!(err, NodeError::Timeout(300)), "{err:?}");
    assert!(err.is_timeout());
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let config = LndConfig {
        url: format!("http://127.0.0.1:{port}"),
        macaroon_hex: hex(MACAROON),
        tls_cert_pem: None,
        timeout: Duration::from_secs(5),
    };
    let node = LndNode::new(config).expect("a valid config");

    let err = node.node_id().await.expect_err("nothing listens");

    assert!(matches!(err, NodeError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn the_macaroon_never_appears_in_debug_output() {
    let sim = LndSim::start(Network::Regtest).await;
    let config = sim.config();
    let node = LndNode::new(config.clone()).expect("a valid config");
    node.create_invoice(&request(Network::Regtest))
        .await
        .expect("an invoice");
    let macaroon = sim.macaroon_hex();

    let config_debug = format!("{config:?}");
    let node_debug = format!("{node:?}");

    assert!(!config_debug.contains(macaroon), "{config_debug}");
    assert!(!node_debug.contains(macaroon), "{node_debug}");
    assert!(!format!("{config:#?}").contains(macaroon));
    assert!(!format!("{node:#?}").contains(macaroon));
    assert!(config_debug.contains(&sim.url()));
}

#[tokio::test]
async fn config_from_files_hex_encodes_the_binary_macaroon() {
    let sim = LndSim::start(Network::Regtest).await;
    let dir = std::env::temp_dir().join(format!("lnd-node-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let macaroon_path = dir.join("invoice.macaroon");
    let cert_path = dir.join("tls.cert");
    std::fs::write(&macaroon_path, MACAROON).expect("write macaroon");
    std::fs::write(&cert_path, &sim.tls.cert_pem).expect("write cert");

    let config = LndConfig::from_files(
        sim.url(),
        &macaroon_path,
        Some(&cert_path),
        Duration::from_secs(5),
    )
    .expect("readable files");
    let missing = LndConfig::from_files(
        sim.url(),
        &dir.join("missing.macaroon"),
        None,
        Duration::from_secs(5),
    )
    .expect_err("no such file");
    std::fs::remove_dir_all(&dir).expect("clean up");

    assert_eq!(config.macaroon_hex, sim.macaroon_hex());
    assert_eq!(config.tls_cert_pem.as_deref(), Some(&sim.tls.cert_pem[..]));
    assert!(matches!(missing, LndConfigError::ReadFile { .. }));
    assert!(
        missing.to_string().contains("missing.macaroon"),
        "{missing}"
    );
    let node = LndNode::new(config).expect("a valid config");
    assert_eq!(node.node_id().await.expect("node id"), sim.node_id());
}

#[test]
fn unusable_configs_are_refused_when_building() {
    let good = LndConfig {
        url: "https://127.0.0.1:8080".to_owned(),
        macaroon_hex: hex(MACAROON),
        tls_cert_pem: None,
        timeout: LndConfig::DEFAULT_TIMEOUT,
    };
    assert!(LndNode::new(good.clone()).is_ok());

    for url in [
        "127.0.0.1:8080",
        "ftp://127.0.0.1",
        "https://lnd:8080/?x=1",
        "https://u:p@lnd",
    ] {
        let config = LndConfig {
            url: url.to_owned(),
            ..good.clone()
        };
        assert!(
            matches!(LndNode::new(config), Err(LndConfigError::Url(_))),
            "{url}"
        );
    }
    for macaroon in ["", "not hex", "abc", "0201 03"] {
        let config = LndConfig {
            macaroon_hex: macaroon.to_owned(),
            ..good.clone()
        };
        assert!(
            matches!(LndNode::new(config), Err(LndConfigError::Macaroon(_))),
            "{macaroon:?}"
        );
    }
    let not_pem = LndConfig {
        tls_cert_pem: Some(b"not a certificate".to_vec()),
        ..good.clone()
    };
    assert!(matches!(
        LndNode::new(not_pem),
        Err(LndConfigError::TlsCert(_))
    ));
    let cert_over_http = LndConfig {
        url: "http://127.0.0.1:8080".to_owned(),
        tls_cert_pem: Some(TlsIdentity::generate(CertShape::Leaf).cert_pem),
        ..good
    };
    assert!(matches!(
        LndNode::new(cert_over_http),
        Err(LndConfigError::TlsCert(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// AddInvoice with a text description, LookupInvoice, CancelInvoice, SendPaymentV2,
// TrackPaymentV2.
// ---------------------------------------------------------------------------------------------

/// How long a call expected to be decided at once may wait: never reached.
const LONG: Duration = Duration::from_secs(10);

/// The wait of a call expected to still be undecided.
const WAIT: Duration = Duration::from_millis(300);

fn payment_hash_of(invoice: &str) -> [u8; 32] {
    decode(invoice).expect("a BOLT11 invoice").payment_hash
}

/// Mints an invoice through the node; returns it and its payment hash.
async fn mint(node: &LndNode) -> (String, [u8; 32]) {
    let invoice = node
        .create_invoice(&request(Network::Regtest))
        .await
        .expect("an invoice");
    let hash = payment_hash_of(&invoice);
    (invoice, hash)
}

fn pay(invoice: &str) -> PaymentRequest<'_> {
    PaymentRequest {
        invoice,
        max_fee_msat: 1_000,
        timeout_secs: 60,
    }
}

/// One line of LND's payment stream.
fn payment_line(hash: &[u8; 32], status: &str, preimage: &[u8; 32], fee_msat: &str) -> String {
    format!(
        "{}\n",
        json!({"result": {
            "payment_hash": hex(hash),
            "status": status,
            "payment_preimage": hex(preimage),
            "fee_msat": fee_msat,
            "failure_reason": "FAILURE_REASON_NONE",
        }})
    )
}

fn assert_macaroon(sim: &LndSim, path: &str) {
    let requests = sim.requests_to(path);
    assert!(!requests.is_empty(), "no request to {path}");
    for request in requests {
        assert_eq!(
            request.headers["grpc-metadata-macaroon"].as_bytes(),
            sim.macaroon_hex().as_bytes(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_text_description_is_sent_as_memo_without_description_hash() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let mut wanted = request(Network::Regtest);
    wanted.description = InvoiceDescription::Text("deposit to alice".to_owned());

    let text = node.create_invoice(&wanted).await.expect("an invoice");

    let invoice = decode(&text).expect("a valid BOLT11 invoice");
    assert_eq!(invoice.amount_msat, Some(123_456));
    assert_eq!(invoice.description_hash, None, "a `d` field, not `h`");
    assert_eq!(
        sim.requests_to("/v1/invoices")[0].json(),
        json!({"value_msat": "123456", "memo": "deposit to alice", "expiry": "300"})
    );
}

#[tokio::test]
async fn lookup_of_an_open_invoice_is_open_with_its_preimage_and_nothing_paid() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (_, hash) = mint(&node).await;

    let lookup = node
        .lookup_invoice(&hash)
        .await
        .expect("an answer")
        .expect("a known invoice");

    assert_eq!(
        lookup,
        InvoiceLookup {
            state: InvoiceState::Open,
            preimage: sim.invoice_preimage(&hash),
            amount_paid_msat: 0,
        }
    );
    let path = format!("/v1/invoice/{}", hex(&hash));
    let gets = sim.requests_to(&path);
    assert_eq!(gets.len(), 1, "GET /v1/invoice/{{lowercase hex}}");
    assert_eq!(gets[0].method, "GET");
    assert_macaroon(&sim, &path);
    // The preimage is never printed.
    let debug = format!("{lookup:?}");
    assert!(
        !debug.contains(&hex(&lookup.preimage.expect("a preimage"))),
        "{debug}"
    );
}

#[tokio::test]
async fn lookup_of_a_settled_invoice_has_its_preimage_and_the_amount_paid() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (_, hash) = mint(&node).await;
    sim.settle_invoice(&hash).expect("an open invoice");

    let lookup = node
        .lookup_invoice(&hash)
        .await
        .expect("an answer")
        .expect("a known invoice");

    assert_eq!(lookup.state, InvoiceState::Settled);
    assert_eq!(lookup.amount_paid_msat, 123_456);
    let preimage = lookup.preimage.expect("a preimage");
    assert_eq!(sha256::Hash::hash(&preimage).to_byte_array(), hash);
}

#[tokio::test]
async fn lookup_of_a_cancelled_invoice_is_canceled() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (_, hash) = mint(&node).await;
    assert_eq!(
        node.cancel_invoice(&hash).await.expect("cancel"),
        Cancelled::Cancelled
    );

    let lookup = node
        .lookup_invoice(&hash)
        .await
        .expect("an answer")
        .expect("a known invoice");

    assert_eq!(lookup.state, InvoiceState::Canceled);
    assert_eq!(lookup.amount_paid_msat, 0);
}

#[tokio::test]
async fn lookup_of_an_unknown_invoice_is_none() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);

    assert_eq!(
        node.lookup_invoice(&[7; 32]).await.expect("an answer"),
        None
    );
}

/// Before 0.18, LND answered an unknown invoice with gRPC `Unknown` (500), same message.
#[tokio::test]
async fn lookup_answered_unable_to_locate_invoice_with_500_is_none() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let hash = [7; 32];
    sim.fail(
        &format!("/v1/invoice/{}", hex(&hash)),
        Fault::Error {
            status: 500,
            message: "unable to locate invoice".to_owned(),
        },
    );

    assert_eq!(node.lookup_invoice(&hash).await.expect("an answer"), None);
}

/// grpc-gateway answers a route it does not know with 404 (`Not Found`, code 5) too: that is no
/// verdict on the invoice.
#[tokio::test]
async fn lookup_answered_404_without_lnds_message_is_an_error() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let hash = [7; 32];
    sim.fail(
        &format!("/v1/invoice/{}", hex(&hash)),
        Fault::Error {
            status: 404,
            message: "Not Found".to_owned(),
        },
    );

    let err = node
        .lookup_invoice(&hash)
        .await
        .expect_err("not LND's answer");

    assert!(
        matches!(&err, NodeError::Status { status: 404, message } if message == "Not Found"),
        "{err:?}"
    );
}

#[tokio::test]
async fn lookup_answers_with_a_wrong_preimage_or_state_are_garbage() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let preimage = [9u8; 32];
    let hash = sha256::Hash::hash(&preimage).to_byte_array();
    let path = format!("/v1/invoice/{}", hex(&hash));
    let answers = [
        // 31 bytes.
        json!({"state": "SETTLED", "r_preimage": BASE64.encode([9u8; 31]), "amt_paid_msat": "1"}),
        // Not base64.
        json!({"state": "SETTLED", "r_preimage": "not base64!", "amt_paid_msat": "1"}),
        // 32 bytes, but another invoice's.
        json!({"state": "SETTLED", "r_preimage": BASE64.encode([8u8; 32]), "amt_paid_msat": "1"}),
        // Another invoice's hash.
        json!({"state": "OPEN", "r_hash": BASE64.encode([1u8; 32]), "amt_paid_msat": "0"}),
        json!({"state": "PAID", "amt_paid_msat": "0"}),
        json!({"state": "SETTLED", "amt_paid_msat": "-1"}),
        json!({"state": "SETTLED", "amt_paid_msat": 1}),
        json!({"state": "SETTLED"}),
    ];
    for answer in answers {
        sim.fail(
            &path,
            Fault::Raw {
                status: 200,
                body: answer.to_string().into(),
            },
        );

        let err = node.lookup_invoice(&hash).await.expect_err("garbage");

        assert!(matches!(err, NodeError::Garbage(_)), "{answer}: {err:?}");
    }
    // The same with the right preimage is an answer; an empty one (a hold invoice) is none.
    for (r_preimage, expected) in [
        (BASE64.encode(preimage), Some(preimage)),
        (String::new(), None),
    ] {
        let answer = json!({"state": "ACCEPTED", "r_hash": BASE64.encode(hash),
                            "r_preimage": r_preimage, "amt_paid_msat": "0"});
        sim.fail(
            &path,
            Fault::Raw {
                status: 200,
                body: answer.to_string().into(),
            },
        );
        let lookup = node.lookup_invoice(&hash).await.expect("an answer");
        assert_eq!(
            lookup,
            Some(InvoiceLookup {
                state: InvoiceState::Accepted,
                preimage: expected,
                amount_paid_msat: 0
            })
        );
    }
}

#[tokio::test]
async fn cancel_of_an_open_invoice_cancels_it() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (_, hash) = mint(&node).await;

    let cancelled = node.cancel_invoice(&hash).await.expect("an answer");

    assert_eq!(cancelled, Cancelled::Cancelled);
    assert_eq!(sim.invoice_state(&hash), Some(InvoiceState::Canceled));
    let posts = sim.requests_to("/v2/invoices/cancel");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].method, "POST");
    assert_eq!(
        posts[0].json(),
        json!({"payment_hash": BASE64.encode(hash)})
    );
    assert_macaroon(&sim, "/v2/invoices/cancel");
    // It can no longer be paid.
    assert!(sim.settle_invoice(&hash).is_err());
}

#[tokio::test]
async fn cancel_of_a_settled_invoice_is_already_paid() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (_, hash) = mint(&node).await;
    sim.settle_invoice(&hash).expect("an open invoice");

    let cancelled = node.cancel_invoice(&hash).await.expect("an answer");

    assert_eq!(cancelled, Cancelled::AlreadyPaid);
    assert_eq!(sim.invoice_state(&hash), Some(InvoiceState::Settled));
}

#[tokio::test]
async fn cancel_of_an_unknown_invoice_is_unknown() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);

    assert_eq!(
        node.cancel_invoice(&[7; 32]).await.expect("an answer"),
        Cancelled::Unknown
    );
}

#[tokio::test]
async fn cancelling_twice_is_cancelled_both_times() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (_, hash) = mint(&node).await;

    let first = node.cancel_invoice(&hash).await.expect("an answer");
    let second = node.cancel_invoice(&hash).await.expect("an answer");

    assert_eq!(
        (first, second),
        (Cancelled::Cancelled, Cancelled::Cancelled)
    );
    assert_eq!(sim.requests_to("/v2/invoices/cancel").len(), 2);
}

/// LND before 0.15 refused a second cancel with `invoice already canceled`.
#[tokio::test]
async fn cancel_answered_invoice_already_canceled_is_cancelled() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    sim.fail(
        "/v2/invoices/cancel",
        Fault::Error {
            status: 500,
            message: "invoice already canceled".to_owned(),
        },
    );

    assert_eq!(
        node.cancel_invoice(&[7; 32]).await.expect("an answer"),
        Cancelled::Cancelled
    );
}

#[tokio::test]
async fn cancel_refused_for_another_reason_is_the_nodes_error() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    sim.fail(
        "/v2/invoices/cancel",
        Fault::Error {
            status: 503,
            message: "waiting to start, RPC services not available".to_owned(),
        },
    );

    let err = node.cancel_invoice(&[7; 32]).await.expect_err("503");

    assert!(
        matches!(err, NodeError::Status { status: 503, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn send_payment_succeeds_with_the_preimage_and_fee_sending_the_documented_fields() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);

    let status = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect("an answer");

    assert_eq!(
        status,
        PaymentStatus::Succeeded {
            preimage,
            fee_msat: 250
        }
    );
    assert_eq!(sim.payment_status(&hash), Some(status));
    let sends = sim.requests_to("/v2/router/send");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].method, "POST");
    assert_eq!(
        sends[0].json(),
        json!({
            "payment_request": invoice,
            "fee_limit_msat": "1000",
            "timeout_seconds": 60,
            "no_inflight_updates": true,
        })
    );
    assert_macaroon(&sim, "/v2/router/send");
}

#[tokio::test]
async fn send_payment_whose_fee_exceeds_the_limit_fails_with_no_route() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    // The simulator's fee is 2 000 msat, over the limit of 1 000.
    let (invoice, _, _) = sim.external_invoice(Network::Regtest, 2_000_000);

    let status = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect("an answer");

    assert_eq!(
        status,
        PaymentStatus::Failed {
            reason: "FAILURE_REASON_NO_ROUTE".to_owned()
        }
    );
}

#[tokio::test]
async fn send_payment_that_fails_reports_lnds_failure_reason() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, _, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.next_payment_outcome(Outcome::Fail {
        reason: "FAILURE_REASON_INSUFFICIENT_BALANCE".to_owned(),
    });

    let status = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect("an answer");

    assert_eq!(
        status,
        PaymentStatus::Failed {
            reason: "FAILURE_REASON_INSUFFICIENT_BALANCE".to_owned()
        }
    );
}

#[tokio::test]
async fn send_payment_of_an_invoice_no_route_reaches_fails_with_incorrect_payment_details() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let stranger = MockNode::random()
        .mint(&InvoiceSpec::new(Network::Regtest, 250_000))
        .expect("mint")
        .invoice
        .to_string();

    let status = node
        .send_payment(pay(&stranger), LONG)
        .await
        .expect("an answer");

    assert_eq!(
        status,
        PaymentStatus::Failed {
            reason: "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS".to_owned()
        }
    );
}

#[tokio::test]
async fn send_payment_still_in_flight_after_the_wait_is_in_flight_and_track_learns_the_outcome() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);
    sim.payment_outcome(hash, Outcome::Pending);

    let started = Instant::now();
    let status = node
        .send_payment(pay(&invoice), WAIT)
        .await
        .expect("an answer");
    let waited = started.elapsed();

    assert_eq!(status, PaymentStatus::InFlight);
    assert!(
        waited >= WAIT && waited < WAIT + Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(sim.payment_status(&hash), Some(PaymentStatus::InFlight));
    assert_eq!(
        node.track_payment(&hash, WAIT).await.expect("an answer"),
        Some(PaymentStatus::InFlight)
    );

    assert!(sim.resolve_payment(&hash, true));
    let tracked = node.track_payment(&hash, LONG).await.expect("an answer");

    assert_eq!(
        tracked,
        Some(PaymentStatus::Succeeded {
            preimage,
            fee_msat: 250
        })
    );
    let track = track_path(&hash);
    assert_eq!(sim.requests_to(&track).len(), 2);
    assert_macaroon(&sim, &track);
}

/// The HTTP client's timeout (here 100 ms) is per call: a payment stream may stay open for the
/// caller's whole wait.
#[tokio::test]
async fn send_payment_waits_past_the_client_timeout_for_its_own_wait() {
    let sim = std::sync::Arc::new(LndSim::start(Network::Regtest).await);
    let mut config = sim.config();
    config.timeout = Duration::from_millis(100);
    let node = LndNode::new(config).expect("a valid config");
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);
    sim.payment_outcome(hash, Outcome::Pending);

    let resolver = tokio::spawn({
        let sim = sim.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            sim.resolve_payment(&hash, true)
        }
    });
    let status = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect("an answer");

    assert!(resolver.await.expect("the resolver"));
    assert_eq!(
        status,
        PaymentStatus::Succeeded {
            preimage,
            fee_msat: 250
        }
    );
}

#[tokio::test]
async fn send_payment_of_an_invoice_already_paid_is_lnds_already_exists_error() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, _, _) = sim.external_invoice(Network::Regtest, 250_000);
    node.send_payment(pay(&invoice), LONG).await.expect("paid");

    let err = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect_err("already paid");

    assert!(
        matches!(&err, NodeError::Status { status: 409, message } if message == "invoice is already paid"),
        "{err:?}"
    );
}

#[tokio::test]
async fn send_payment_of_a_payment_in_flight_is_lnds_in_transition_error() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.payment_outcome(hash, Outcome::Pending);
    let first = node
        .send_payment(pay(&invoice), WAIT)
        .await
        .expect("an answer");
    assert_eq!(first, PaymentStatus::InFlight);

    let err = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect_err("in flight");

    assert!(
        matches!(&err, NodeError::Status { status: 409, message } if message == "payment is in transition"),
        "{err:?}"
    );
}

#[tokio::test]
async fn send_payment_of_a_failed_payment_may_be_tried_again() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);
    sim.payment_outcome(
        hash,
        Outcome::Fail {
            reason: "FAILURE_REASON_TIMEOUT".to_owned(),
        },
    );
    let first = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect("an answer");
    assert!(matches!(first, PaymentStatus::Failed { .. }), "{first:?}");

    let second = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect("an answer");

    assert_eq!(
        second,
        PaymentStatus::Succeeded {
            preimage,
            fee_msat: 250
        }
    );
}

#[tokio::test]
async fn send_payment_refused_by_lnd_before_trying_is_the_nodes_error() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    // A testnet invoice to a regtest node.
    let (invoice, _, _) = sim.external_invoice(Network::Testnet, 250_000);

    let err = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect_err("another network");

    assert!(
        matches!(&err, NodeError::Status { status: 500, message } if message.contains("network")),
        "{err:?}"
    );
}

#[tokio::test]
async fn send_payment_of_text_that_is_not_bolt11_is_refused_without_asking_the_node() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);

    let err = node
        .send_payment(pay("lnbcrt1notaninvoice"), LONG)
        .await
        .expect_err("not an invoice");

    assert!(matches!(err, NodeError::Refused(_)), "{err:?}");
    assert!(sim.requests().is_empty());
}

/// With `no_inflight_updates`, LND sends nothing, not even its status line, until the payment
/// is decided: a node that never answers looks the same, and is in flight for the caller
/// (tracking tells the two apart).
#[tokio::test]
async fn send_payment_to_a_node_that_never_answers_is_in_flight_after_the_wait() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, _, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.fail("/v2/router/send", Fault::Hang);

    let started = Instant::now();
    let status = node
        .send_payment(pay(&invoice), WAIT)
        .await
        .expect("an answer");

    assert_eq!(status, PaymentStatus::InFlight);
    assert!(started.elapsed() < WAIT + Duration::from_secs(2));
}

#[tokio::test]
async fn send_payment_is_in_flight_when_the_stream_stays_open_after_an_in_flight_update() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.fail(
        "/v2/router/send",
        Fault::Stream {
            chunks: vec![payment_line(&hash, "IN_FLIGHT", &[0; 32], "0").into()],
            hold_open: true,
        },
    );

    let status = node
        .send_payment(pay(&invoice), WAIT)
        .await
        .expect("an answer");

    assert_eq!(status, PaymentStatus::InFlight);
}

#[tokio::test]
async fn an_update_split_across_chunks_and_without_a_final_newline_is_read_whole() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);
    let in_flight = payment_line(&hash, "INITIATED", &[0; 32], "0");
    let succeeded = payment_line(&hash, "SUCCEEDED", &preimage, "42");
    let succeeded = succeeded.trim_end();
    let (head, tail) = succeeded.split_at(succeeded.len() / 2);
    sim.fail(
        "/v2/router/send",
        Fault::Stream {
            chunks: vec![format!("{in_flight}{head}").into(), tail.to_owned().into()],
            hold_open: false,
        },
    );

    let status = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect("an answer");

    assert_eq!(
        status,
        PaymentStatus::Succeeded {
            preimage,
            fee_msat: 42
        }
    );
}

#[tokio::test]
async fn a_stream_that_ends_undecided_is_in_flight() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.fail(
        "/v2/router/send",
        Fault::Stream {
            chunks: vec![payment_line(&hash, "IN_FLIGHT", &[0; 32], "0").into()],
            hold_open: false,
        },
    );

    let status = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect("an answer");

    assert_eq!(status, PaymentStatus::InFlight);
}

#[tokio::test]
async fn a_garbage_line_in_the_update_stream_is_garbage() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);
    let garbage_lines = [
        "<html>oops</html>\n".to_owned(),
        "{}\n".to_owned(),
        format!("{}\n", json!({"result": {"status": "PAID"}})),
        payment_line(&hash, "SUCCEEDED", &preimage, "-1"),
        payment_line(&hash, "SUCCEEDED", &preimage, ""),
        // 31 bytes of preimage.
        payment_line(&hash, "SUCCEEDED", &preimage, "1").replace(&hex(&preimage), &hex(&[1; 31])),
        // Base64 rather than hex.
        payment_line(&hash, "SUCCEEDED", &preimage, "1")
            .replace(&hex(&preimage), &BASE64.encode(preimage)),
        // Another payment's update.
        payment_line(&[1; 32], "FAILED", &[0; 32], "0"),
    ];
    for line in garbage_lines {
        sim.fail(
            "/v2/router/send",
            Fault::Stream {
                chunks: vec![line.clone().into()],
                hold_open: true,
            },
        );

        let err = node
            .send_payment(pay(&invoice), LONG)
            .await
            .expect_err("garbage");

        assert!(matches!(err, NodeError::Garbage(_)), "{line}: {err:?}");
    }
}

#[tokio::test]
async fn a_succeeded_update_whose_preimage_does_not_pay_the_invoice_is_garbage() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.fail(
        "/v2/router/send",
        Fault::Stream {
            chunks: vec![payment_line(&hash, "SUCCEEDED", &[5; 32], "1").into()],
            hold_open: false,
        },
    );

    let err = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect_err("a wrong preimage");

    assert!(
        matches!(&err, NodeError::Garbage(message) if message.contains("payment hash")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_update_stream_over_one_mib_is_garbage() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    // Valid in-flight updates without end: only the size is wrong.
    sim.fail(
        "/v2/router/send",
        Fault::Flood {
            chunk: payment_line(&hash, "IN_FLIGHT", &[0; 32], "0")
                .repeat(64)
                .into(),
        },
    );

    let started = Instant::now();
    let err = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect_err("over the cap");

    assert!(matches!(err, NodeError::Garbage(_)), "{err:?}");
    assert!(
        started.elapsed() < LONG,
        "the cap ends the read, not the wait"
    );
}

/// An error after the stream began comes as an `{"error": Status}` line in a 200 answer: its
/// gRPC code gives the status it would have had (14 Unavailable: 503).
#[tokio::test]
async fn an_error_line_in_the_update_stream_is_a_status_of_its_grpc_code() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    let error = json!({"error": {"code": 14, "message": "server shutting down", "details": []}});
    sim.fail(
        "/v2/router/send",
        Fault::Stream {
            chunks: vec![
                payment_line(&hash, "IN_FLIGHT", &[0; 32], "0").into(),
                format!("{error}\n").into(),
            ],
            hold_open: true,
        },
    );

    let err = node
        .send_payment(pay(&invoice), LONG)
        .await
        .expect_err("an error line");

    assert!(
        matches!(&err, NodeError::Status { status: 503, message } if message == "server shutting down"),
        "{err:?}"
    );
}

#[tokio::test]
async fn track_of_an_unknown_payment_is_none_and_the_hash_is_url_safe_base64() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    // Standard base64 of these bytes is all `/`, which would split the path.
    let hash = [0xff; 32];

    let tracked = node.track_payment(&hash, LONG).await.expect("an answer");

    assert_eq!(tracked, None);
    let path = format!("/v2/router/track/{}", BASE64_URL.encode(hash));
    assert_eq!(path, track_path(&hash));
    assert!(path.ends_with("___8="), "{path}");
    let tracks = sim.requests_to(&path);
    assert_eq!(tracks.len(), 1, "{:?}", sim.requests());
    assert_eq!(tracks[0].method, "GET");
    assert_eq!(tracks[0].query, "no_inflight_updates=true");
    assert_macaroon(&sim, &path);
}

/// Only LND's own `payment isn't initiated` means the node never started the payment (it is
/// safe to pay then): a 404 of a gateway or proxy is an error.
#[tokio::test]
async fn track_answered_404_without_lnds_message_is_an_error() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let hash = [7; 32];
    sim.fail(
        &track_path(&hash),
        Fault::Error {
            status: 404,
            message: "Not Found".to_owned(),
        },
    );

    let err = node
        .track_payment(&hash, LONG)
        .await
        .expect_err("not LND's answer");

    assert!(
        matches!(err, NodeError::Status { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn track_of_a_failed_payment_is_failed_and_of_a_succeeded_one_succeeded() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (failing, failed_hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.payment_outcome(
        failed_hash,
        Outcome::Fail {
            reason: "FAILURE_REASON_TIMEOUT".to_owned(),
        },
    );
    node.send_payment(pay(&failing), LONG)
        .await
        .expect("an answer");
    let (paying, paid_hash, preimage) = sim.external_invoice(Network::Regtest, 10_000);
    node.send_payment(pay(&paying), LONG)
        .await
        .expect("an answer");

    assert_eq!(
        node.track_payment(&failed_hash, LONG)
            .await
            .expect("an answer"),
        Some(PaymentStatus::Failed {
            reason: "FAILURE_REASON_TIMEOUT".to_owned()
        })
    );
    assert_eq!(
        node.track_payment(&paid_hash, LONG)
            .await
            .expect("an answer"),
        Some(PaymentStatus::Succeeded {
            preimage,
            fee_msat: 10
        })
    );
}

#[tokio::test]
async fn track_of_a_payment_that_fails_while_tracked_is_failed() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, _) = sim.external_invoice(Network::Regtest, 250_000);
    sim.payment_outcome(hash, Outcome::Pending);
    node.send_payment(pay(&invoice), WAIT)
        .await
        .expect("an answer");

    let (tracked, resolved) = tokio::join!(node.track_payment(&hash, LONG), async {
        // Once the simulator has the request, the track is waiting for the payment.
        while sim.requests_to(&track_path(&hash)).is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sim.resolve_payment(&hash, false)
    });

    assert!(resolved);
    assert_eq!(
        tracked.expect("an answer"),
        Some(PaymentStatus::Failed {
            reason: "FAILURE_REASON_NO_ROUTE".to_owned()
        })
    );
}

/// LND's `invoice.macaroon` holds `invoices:*`, `address:*` and `onchain:read`: it can look
/// up and cancel invoices, but neither read `getinfo` nor pay.
#[tokio::test]
async fn an_invoice_macaroon_cannot_pay_and_a_baked_facilitator_macaroon_can() {
    let sim = LndSim::start(Network::Regtest).await;
    let node = node_for(&sim);
    let (invoice, hash, preimage) = sim.external_invoice(Network::Regtest, 250_000);
    sim.grant_only(INVOICE_MACAROON_PERMISSIONS);

    let denied = |result: Result<_, NodeError>| matches!(result, Err(NodeError::Status { status: 500, message }) if message == "permission denied");
    assert!(denied(
        node.send_payment(pay(&invoice), LONG).await.map(|_| ())
    ));
    assert!(denied(node.track_payment(&hash, LONG).await.map(|_| ())));
    assert!(denied(node.node_id().await.map(|_| ())));
    assert_eq!(
        node.lookup_invoice(&[7; 32]).await.expect("invoices:read"),
        None
    );
    assert_eq!(
        node.cancel_invoice(&[7; 32]).await.expect("invoices:write"),
        Cancelled::Unknown
    );

    sim.grant_only(FACILITATOR_PERMISSIONS);
    let (minted, minted_hash) = mint(&node).await;
    assert!(!minted.is_empty());
    assert_eq!(
        node.cancel_invoice(&minted_hash)
            .await
            .expect("invoices:write"),
        Cancelled::Cancelled
    );
    assert_eq!(
        node.send_payment(pay(&invoice), LONG)
            .await
            .expect("offchain:write"),
        PaymentStatus::Succeeded {
            preimage,
            fee_msat: 250
        }
    );
}

#[tokio::test]
async fn the_simulator_writes_the_files_and_environment_of_a_service_process() {
    let sim = LndSim::start(Network::Regtest).await;
    let dir = tempfile::tempdir().expect("a temporary directory");

    let files = sim.write_credentials(dir.path());
    let env = sim.service_env(&files);

    let config = LndConfig::from_files(
        sim.url(),
        &files.macaroon,
        Some(&files.tls_cert),
        Duration::from_secs(5),
    )
    .expect("readable files");
    let node = LndNode::new(config).expect("a valid config");
    assert_eq!(node.node_id().await.expect("node id"), sim.node_id());
    let names: Vec<&str> = env.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "X402_FACILITATOR_NODE",
            "X402_FACILITATOR_LND_URL",
            "X402_FACILITATOR_LND_MACAROON",
            "X402_FACILITATOR_LND_TLS_CERT"
        ]
    );
    assert_eq!(env[0].1, "lnd");
    assert_eq!(env[1].1, sim.url());
}
