//! The layer takes payments end to end through the facilitator service itself (no mock
//! anywhere): an axum app with [`X402Layer`] in front of it, the service on a SQLite file and
//! its simulated Lightning node, both over real HTTP. The seed flow pays from a prepaid
//! account (funded by a deposit paid over Lightning); the lnbtc flow pays the same kind of
//! invoice over Lightning; an invoice is paid once, whichever flow.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use x402_lightning::header::{X_PAYMENT, X_PAYMENT_RESPONSE, decode_payment_response_header};
use x402_lightning::lnbtc::client::{ClientPolicy, IntendedRequest, PayerResult, PayerStatus};
use x402_lightning::lnbtc::header::{
    PAYMENT_REQUIRED, PAYMENT_SIGNATURE, decode_payment_required, encode_payment_signature,
};
use x402_lightning::v1::AccountKey;
use x402_lightning::v1::sign::ACCOUNT_SIGNATURE_HEADER;
use x402_lightning::{
    HttpFacilitator, Network, PaymentRequired, Price, VerifiedPayment, X402Layer,
};
use x402_lightning_facilitator::{Config, Service, serve};

const PRICE_MSAT: u64 = 10_000;

struct Setup {
    app: String,
    facilitator: String,
    client: reqwest::Client,
    _directory: tempfile::TempDir,
}

async fn listen() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    (listener, addr)
}

/// The service (both flows, regtest) and an app whose `/weather` costs [`PRICE_MSAT`].
async fn setup() -> Setup {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = Config {
        database_url: format!("sqlite://{}", directory.path().join("f.db").display()),
        networks: vec![Network::Regtest],
        ..Config::default()
    };
    let service = Arc::new(Service::open(&config).await.expect("the service opens"));
    let (listener, facilitator) = listen().await;
    tokio::spawn(serve(listener, service, std::future::pending()));
    let facilitator = format!("http://{facilitator}");

    let (listener, app) = listen().await;
    let app = format!("http://{app}");
    let payments = X402Layer::builder(
        HttpFacilitator::builder(&facilitator)
            .build()
            .expect("a client"),
        Network::Regtest,
    )
    .public_base_url(&app)
    .build()
    .expect("a layer");
    payments
        .check_facilitator()
        .await
        .expect("the service serves both flows");
    let router = Router::new().route(
        "/weather",
        get(|paid: VerifiedPayment| async move {
            axum::Json(json!({ "sky": "clear", "payer": paid.payer, "msat": paid.amount_msat }))
        })
        .route_layer(payments.charge(Price::msat(PRICE_MSAT)).expect("a price")),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Setup {
        app,
        facilitator,
        client: reqwest::Client::new(),
        _directory: directory,
    }
}

fn unix_now() -> u64 {
    x402_lightning::invoice::unix_now().as_secs()
}

impl Setup {
    /// A fresh 402 from `/weather`: the v1 body and the PAYMENT-REQUIRED header's text.
    async fn challenge(&self) -> (PaymentRequired, String) {
        let response = self
            .client
            .get(format!("{}/weather", self.app))
            .send()
            .await
            .expect("the app answers");
        assert_eq!(response.status(), 402);
        let header = response
            .headers()
            .get(PAYMENT_REQUIRED)
            .expect("an lnbtc challenge too")
            .to_str()
            .expect("text")
            .to_owned();
        (response.json().await.expect("the v1 body"), header)
    }

    /// Funds `key` with `amount_msat`: a deposit invoice paid through the simulated node.
    async fn fund(&self, key: &AccountKey, amount_msat: u64) {
        let deposit: Value = self
            .client
            .post(format!("{}/accounts/deposits", self.facilitator))
            .json(&json!({ "network": "lightning-regtest", "account": key.account(), "amount": amount_msat.to_string() }))
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("JSON");
        let paid = self
            .client
            .post(format!("{}/pay", self.facilitator))
            .json(&json!({ "invoice": deposit["invoice"] }))
            .send()
            .await
            .expect("answers");
        assert_eq!(paid.status(), 200, "the deposit invoice is paid");
    }

    /// The account's balance, by a signed read (which also credits a paid deposit).
    async fn balance(&self, key: &AccountKey) -> Value {
        self.client
            .get(format!(
                "{}/accounts/lightning-regtest/{}",
                self.facilitator,
                key.account()
            ))
            .header(
                ACCOUNT_SIGNATURE_HEADER,
                key.account_read_signature("lightning-regtest", unix_now()),
            )
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("JSON")
    }

    async fn get_with(&self, header: &str, value: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/weather", self.app))
            .header(header, value)
            .send()
            .await
            .expect("the app answers")
    }

    /// Pays the lnbtc challenge over the simulated node: the `PAYMENT-SIGNATURE` value.
    async fn lnbtc_proof(&self, header: &str) -> Result<String, String> {
        let required = decode_payment_required(header.as_bytes(), 64 * 1024).expect("decodes");
        let url = format!("{}/weather", self.app);
        let intended = IntendedRequest::Http {
            method: "GET",
            url: &url,
            body: b"",
            header_lines: &[],
        };
        let policy = ClientPolicy::default().allow(Network::Regtest);
        let selected =
            x402_lightning::lnbtc::client::select(&required, &intended, &policy, unix_now())
                .expect("an offer bound to this request");
        let invoice = selected
            .requirements
            .invoice()
            .unwrap_or_default()
            .to_owned();
        let paid = self
            .client
            .post(format!("{}/pay", self.facilitator))
            .json(&json!({ "invoice": invoice }))
            .send()
            .await
            .expect("answers");
        if !paid.status().is_success() {
            return Err(paid.text().await.unwrap_or_default());
        }
        let paid: Value = paid.json().await.expect("JSON");
        let result = PayerResult {
            status: PayerStatus::Paid,
            invoice,
            payment_hash: paid["paymentHash"].as_str().unwrap_or_default().to_owned(),
            amount_msat: PRICE_MSAT,
            preimage: paid["preimage"].as_str().map(str::to_owned),
        };
        let payment = selected.into_payment(&result).expect("a proof");
        Ok(encode_payment_signature(&payment))
    }
}

#[tokio::test]
async fn the_layer_takes_a_seed_flow_payment_from_a_prepaid_account_through_the_service() {
    let setup = setup().await;
    let key = AccountKey::from_secret_hex(&"42".repeat(32)).expect("a key");
    setup.fund(&key, 3 * PRICE_MSAT).await;
    assert_eq!(setup.balance(&key).await["balance"], "30000");

    let (required, _) = setup.challenge().await;
    let requirements = &required.accepts[0];
    let payment = key.payment_header(requirements).expect("a BOLT11 invoice");
    let paid = setup.get_with(X_PAYMENT, &payment).await;
    assert_eq!(paid.status(), 200);
    let settlement = decode_payment_response_header(
        paid.headers()
            .get(X_PAYMENT_RESPONSE)
            .expect("X-PAYMENT-RESPONSE")
            .as_bytes(),
        64 * 1024,
    )
    .expect("a settle response");
    assert!(settlement.success);
    assert_eq!(settlement.payer.as_deref(), Some(key.account().as_str()));
    let body: Value = paid.json().await.expect("JSON");
    assert_eq!(body["payer"], key.account());
    assert_eq!(setup.balance(&key).await["balance"], "20000");

    // One authorization, one serve.
    let replay = setup.get_with(X_PAYMENT, &payment).await;
    assert_eq!(replay.status(), 402);
    assert_eq!(setup.balance(&key).await["balance"], "20000");
}

#[tokio::test]
async fn an_account_without_funds_is_refused_and_nothing_is_served() {
    let setup = setup().await;
    let key = AccountKey::from_secret_hex(&"43".repeat(32)).expect("a key");
    let (required, _) = setup.challenge().await;
    let refused = setup
        .get_with(
            X_PAYMENT,
            &key.payment_header(&required.accepts[0])
                .expect("a BOLT11 invoice"),
        )
        .await;
    assert_eq!(refused.status(), 402);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"], "insufficient_funds", "{body}");
    assert!(body.get("sky").is_none());
}

#[tokio::test]
async fn the_lnbtc_flow_pays_through_the_same_service() {
    let setup = setup().await;
    let (_, header) = setup.challenge().await;
    let proof = setup
        .lnbtc_proof(&header)
        .await
        .expect("paid over Lightning");
    let paid = setup.get_with(PAYMENT_SIGNATURE, &proof).await;
    assert_eq!(paid.status(), 200);
    let replay = setup.get_with(PAYMENT_SIGNATURE, &proof).await;
    assert_eq!(replay.status(), 402);
}

#[tokio::test]
async fn an_invoice_paid_from_an_account_cannot_be_paid_over_lightning_too() {
    let setup = setup().await;
    let key = AccountKey::from_secret_hex(&"44".repeat(32)).expect("a key");
    setup.fund(&key, PRICE_MSAT).await;
    setup.balance(&key).await;
    // One 402, one invoice offered through both flows.
    let (required, header) = setup.challenge().await;
    let paid = setup
        .get_with(
            X_PAYMENT,
            &key.payment_header(&required.accepts[0])
                .expect("a BOLT11 invoice"),
        )
        .await;
    assert_eq!(paid.status(), 200);
    // The node's invoice was cancelled by the seed-flow settle: no wallet can pay it now.
    let refused = setup.lnbtc_proof(&header).await;
    assert!(
        refused.is_err(),
        "the cancelled invoice was paid over Lightning"
    );
}

#[tokio::test]
async fn an_invoice_paid_over_lightning_cannot_be_paid_from_an_account_too() {
    let setup = setup().await;
    let key = AccountKey::from_secret_hex(&"45".repeat(32)).expect("a key");
    setup.fund(&key, PRICE_MSAT).await;
    setup.balance(&key).await;
    let (required, header) = setup.challenge().await;
    let proof = setup
        .lnbtc_proof(&header)
        .await
        .expect("paid over Lightning");
    assert_eq!(
        setup.get_with(PAYMENT_SIGNATURE, &proof).await.status(),
        200
    );
    let refused = setup
        .get_with(
            X_PAYMENT,
            &key.payment_header(&required.accepts[0])
                .expect("a BOLT11 invoice"),
        )
        .await;
    assert_eq!(refused.status(), 402);
    assert_eq!(
        setup.balance(&key).await["balance"],
        "10000",
        "never debited"
    );
}
