//! [`LndNode`] against an LND REST simulator (`lnd_sim`) speaking LND's documented shapes over
//! real HTTPS.

mod lnd_sim;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use x402_lightning::Network;
use x402_lightning::lnbtc::invoice::decode;
use x402_lightning_facilitator::node::lnd::LndConfigError;
use x402_lightning_facilitator::node::{
    InvoiceRequest, LightningNode, LndConfig, LndNode, NodeError,
};

use crate::lnd_sim::{CertShape, Fault, LndSim, MACAROON, TlsIdentity, hex};

fn request(network: Network) -> InvoiceRequest {
    InvoiceRequest {
        network,
        amount_msat: 123_456,
        description_hash: [0xab; 32],
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
    wanted.description_hash = std::array::from_fn(|i| i as u8);

    let text = node.create_invoice(&wanted).await.expect("an invoice");

    let invoice = decode(&text).expect("a valid BOLT11 invoice");
    assert_eq!(
        Network::from_currency(&invoice.currency),
        Some(Network::Regtest)
    );
    assert_eq!(invoice.amount_msat, Some(123_456));
    assert_eq!(invoice.description_hash, Some(wanted.description_hash));
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
            "description_hash": BASE64.encode(wanted.description_hash),
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
