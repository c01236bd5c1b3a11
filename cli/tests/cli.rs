//! The `x402-lightning` binary run as a user runs it, against real servers over HTTP: the
//! facilitator service (SQLite in a temporary directory, its simulated node on regtest) and an
//! axum app with [`X402Layer`] in front of priced routes. Each test checks stdout, stderr and the
//! exit code apart. Where nothing may be paid, `--sim-url` points at a stand-in node that counts
//! its `/pay` calls.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use x402_lightning::v1::AccountKey;
use x402_lightning::{HttpFacilitator, Network, Price, X402Layer};
use x402_lightning_facilitator::{Config, Service, serve};

/// The price of `/weather` and `/echo`: 10 sat.
const PRICE_MSAT: u64 = 10_000;

/// `/weather`'s body, byte for byte.
const WEATHER: &str = r#"{"sky":"clear","celsius":21}"#;

/// The free `/`'s body.
const FREE: &str = "free for all\n";

/// A seed-flow account key (any valid secret; every test has its own facilitator).
const ACCOUNT_KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

/// Every environment variable the CLI reads, removed so a developer's shell cannot change a
/// result; the proxy variables too, since reqwest would send 127.0.0.1 through a proxy.
const SCRUBBED: &[&str] = &[
    "X402_MAX_COST",
    "X402_MAX_FEE",
    "X402_ALLOW_ORIGINS",
    "X402_WALLET",
    "X402_NETWORK",
    "X402_WALLET_SIM_URL",
    "X402_LND_URL",
    "X402_LND_MACAROON",
    "X402_LND_TLS_CERT",
    "X402_NWC_URI",
    "X402_WALLET_KEY",
    "X402_FACILITATOR_URL",
    "X402_ACCOUNT_NETWORK",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

// ---------------------------------------------------------------------------------------------
// Running the binary

/// One run of the binary.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// The JSON document the run printed on stdout.
    fn stdout_json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {:?}", self.stdout()))
    }

    /// Fails with the whole run shown unless it exited `code`.
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
}

/// Runs `x402-lightning ARGS` in a clean environment, without blocking the test's runtime (so
/// the in-process servers keep serving).
async fn cli(args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_x402-lightning"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("X402_") {
            command.env_remove(name);
        }
    }
    for name in SCRUBBED {
        command.env_remove(name);
    }
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("the binary runs");
    Run {
        code: output.status.code().expect("an exit code, not a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// The payment hash on the receipt's `payment hash:` line.
fn receipt_hash(stderr: &str) -> &str {
    let hash = stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("payment hash:"))
        .unwrap_or_else(|| panic!("no payment hash on stderr:\n{stderr}"))
        .trim();
    assert!(
        hash.len() == 64
            && hash
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)),
        "a payment hash is 64 lowercase hex: {hash:?}"
    );
    hash
}

// ---------------------------------------------------------------------------------------------
// The servers

struct Setup {
    app: String,
    facilitator: String,
    _directory: tempfile::TempDir,
}

async fn listen() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    (listener, addr)
}

/// The facilitator service (both flows, regtest, a simulated node) and an app: `/weather`
/// (GET, 10 sat), `/echo` (POST, 10 sat, answers the body it got), `/` (free) and `/broken`
/// (free, 500).
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
    let price = || payments.charge(Price::msat(PRICE_MSAT)).expect("a price");
    let router = Router::new()
        .route("/", get(|| async { FREE }))
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/weather",
            get(|| async { ([(CONTENT_TYPE, "application/json")], WEATHER) }).route_layer(price()),
        )
        .route(
            "/echo",
            post(|body: Bytes| async move { body }).route_layer(price()),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Setup {
        app,
        facilitator,
        _directory: directory,
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app)
    }

    /// Credits `amount_msat` to [`ACCOUNT_KEY`]'s account: a deposit invoice paid through the
    /// simulated node, over the service's own HTTP API (not the CLI).
    async fn fund(&self, amount_msat: u64) {
        let key = AccountKey::from_secret_hex(ACCOUNT_KEY).expect("a key");
        let deposit = post_json(
            &format!("{}/accounts/deposits", self.facilitator),
            &json!({ "network": "lightning-regtest", "account": key.account(), "amount": amount_msat.to_string() }),
        )
        .await;
        assert_eq!(deposit.0, 201, "a deposit invoice: {}", deposit.1);
        let paid = post_json(
            &format!("{}/pay", self.facilitator),
            &json!({ "invoice": deposit.1["invoice"] }),
        )
        .await;
        assert_eq!(paid.0, 200, "the deposit invoice is paid: {}", paid.1);
        // Reading the deposit credits it at once (a withdrawal alone would not wait for it).
        let url = format!(
            "{}/accounts/deposits/{}",
            self.facilitator,
            deposit.1["paymentHash"].as_str().expect("a payment hash")
        );
        let status = reqwest::get(&url).await.expect("the service answers");
        let status: Value =
            serde_json::from_slice(&status.bytes().await.expect("a body")).expect("JSON");
        assert_eq!(status["state"], "credited", "{status}");
    }

    /// The account's balance through `x402-lightning balance`.
    async fn balance(&self) -> Value {
        let run = cli(&[
            "balance",
            "--account-key",
            ACCOUNT_KEY,
            "--facilitator",
            &self.facilitator,
            "--account-network",
            "lightning-regtest",
        ])
        .await;
        run.expect_code(0);
        assert!(
            run.stderr.contains("available"),
            "the balance in words on stderr:\n{}",
            run.stderr
        );
        run.stdout_json()
    }
}

/// `POST url` with a JSON body: the status and the JSON answer.
async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    (
        status,
        serde_json::from_slice(&bytes).expect("a JSON answer"),
    )
}

/// A stand-in Lightning node for `--sim-url`: its `POST /pay` answers `status` with `body` and
/// records each request's JSON, so a test can say whether (and what) the CLI tried to pay.
struct StandInNode {
    url: String,
    calls: Arc<Mutex<Vec<Value>>>,
}

impl StandInNode {
    async fn start(status: StatusCode, body: &'static str) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route(
                "/pay",
                post(
                    move |State(calls): State<Arc<Mutex<Vec<Value>>>>, body_in: Bytes| async move {
                        let request = serde_json::from_slice(&body_in).unwrap_or(Value::Null);
                        calls.lock().expect("not poisoned").push(request);
                        (status, [(CONTENT_TYPE, "application/json")], body).into_response()
                    },
                ),
            )
            .with_state(calls.clone());
        let (listener, addr) = listen().await;
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url: format!("http://{addr}"),
            calls,
        }
    }

    /// A node that must never be asked to pay: any call is recorded and answered 500.
    async fn never_called() -> Self {
        Self::start(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"this test pays nothing"}"#,
        )
        .await
    }

    fn calls(&self) -> Vec<Value> {
        self.calls.lock().expect("not poisoned").clone()
    }
}

// ---------------------------------------------------------------------------------------------
// The lnbtc flow with the simulated node

#[tokio::test]
async fn pays_the_lnbtc_flow_body_on_stdout_receipt_on_stderr() {
    let setup = setup().await;
    let run = cli(&[
        "pay",
        &setup.url("/weather"),
        "--max-cost",
        "20sat",
        "--wallet",
        "sim",
        "--sim-url",
        &setup.facilitator,
        "--network",
        "lightning-regtest",
    ])
    .await;
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        WEATHER,
        "stdout is the handler's body, exactly"
    );
    assert!(
        run.stderr.contains("paid 10 sat"),
        "the receipt on stderr:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("lnbtc flow"), "{}", run.stderr);
    let hash = receipt_hash(&run.stderr);
    assert!(
        run.stderr
            .contains(&format!("settled:      transaction {hash}")),
        "the server settled this payment:\n{}",
        run.stderr
    );
    assert!(!run.stdout().contains("paid"), "no receipt on stdout");
}

#[tokio::test]
async fn a_price_above_max_cost_pays_nothing_and_exits_3() {
    let setup = setup().await;
    let node = StandInNode::never_called().await;
    let run = cli(&[
        "pay",
        &setup.url("/weather"),
        "--max-cost",
        "5sat",
        "--wallet",
        "sim",
        "--sim-url",
        &node.url,
        "--network",
        "lightning-regtest",
    ])
    .await;
    run.expect_code(3);
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout: {:?}",
        run.stdout()
    );
    assert!(
        run.stderr.contains("max-cost"),
        "stderr names the limit:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was paid"), "{}", run.stderr);
    assert_eq!(
        node.calls(),
        Vec::<Value>::new(),
        "the wallet was never asked to pay"
    );
}

#[tokio::test]
async fn dry_run_shows_the_offer_and_pays_nothing() {
    let setup = setup().await;
    let node = StandInNode::never_called().await;
    let run = cli(&[
        "pay",
        &setup.url("/weather"),
        "--dry-run",
        "--max-cost",
        "20sat",
        "--wallet",
        "sim",
        "--sim-url",
        &node.url,
        "--network",
        "lightning-regtest",
    ])
    .await;
    run.expect_code(0);
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout: {:?}",
        run.stdout()
    );
    assert!(run.stderr.contains("dry run"), "{}", run.stderr);
    assert!(
        run.stderr.contains("would pay 10 sat"),
        "the amount:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("amount:       10 sat (10000 msat)"),
        "the offer:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("paid 10 sat"), "{}", run.stderr);
    assert_eq!(
        node.calls(),
        Vec::<Value>::new(),
        "the wallet was never asked to pay"
    );
}

// ---------------------------------------------------------------------------------------------
// The seed flow: deposit, balance, pay from the account, withdraw

#[tokio::test]
async fn the_seed_flow_pays_from_a_deposited_account() {
    let setup = setup().await;
    let account = [
        "--account-key",
        ACCOUNT_KEY,
        "--facilitator",
        &setup.facilitator,
    ];

    let mut deposit = vec!["deposit", "100sat", "--wallet", "sim", "--sim-url"];
    deposit.extend([
        setup.facilitator.as_str(),
        "--account-network",
        "lightning-regtest",
    ]);
    deposit.extend(account);
    let run = cli(&deposit).await;
    run.expect_code(0);
    let deposited = run.stdout_json();
    assert_eq!(deposited["state"], "credited", "{deposited}");
    assert_eq!(deposited["amount"], "100000", "{deposited}");
    assert!(
        run.stderr.contains("deposit of 100 sat"),
        "progress on stderr:\n{}",
        run.stderr
    );

    let balance = setup.balance().await;
    assert_eq!(balance["balance"], "100000", "{balance}");
    assert_eq!(balance["available"], "100000", "{balance}");

    let weather = setup.url("/weather");
    let mut pay = vec![
        "pay",
        weather.as_str(),
        "--wallet",
        "account",
        "--max-cost",
        "20sat",
        "--network",
        "lightning-regtest",
    ];
    pay.extend(account);
    let run = cli(&pay).await;
    run.expect_code(0);
    assert_eq!(run.stdout(), WEATHER);
    assert!(run.stderr.contains("paid 10 sat"), "{}", run.stderr);
    assert!(run.stderr.contains("v1 flow"), "{}", run.stderr);
    let hash = receipt_hash(&run.stderr);
    assert!(
        run.stderr
            .contains(&format!("settled:      transaction {hash}")),
        "{}",
        run.stderr
    );

    let balance = setup.balance().await;
    assert_eq!(balance["balance"], "90000", "{balance}");
    assert_eq!(balance["held"], "0", "{balance}");
}

#[tokio::test]
async fn withdraw_pays_another_nodes_invoice() {
    let setup = setup().await;
    setup.fund(100_000).await;
    let (status, external) = post_json(
        &format!("{}/pay/external", setup.facilitator),
        &json!({ "amount": "20000" }),
    )
    .await;
    assert_eq!(status, 201, "{external}");
    let invoice = external["invoice"].as_str().expect("an invoice");

    let run = cli(&[
        "withdraw",
        invoice,
        "--max-fee",
        "1sat",
        "--account-key",
        ACCOUNT_KEY,
        "--facilitator",
        &setup.facilitator,
        "--account-network",
        "lightning-regtest",
    ])
    .await;
    run.expect_code(0);
    let withdrawal = run.stdout_json();
    assert_eq!(withdrawal["state"], "succeeded", "{withdrawal}");
    assert_eq!(withdrawal["paymentHash"], external["paymentHash"]);
    assert_eq!(withdrawal["amount"], "20000", "{withdrawal}");
    assert!(
        run.stderr.contains("withdrew 20 sat"),
        "the outcome in words:\n{}",
        run.stderr
    );

    let fee: u64 = withdrawal["feeMsat"]
        .as_str()
        .and_then(|fee| fee.parse().ok())
        .expect("feeMsat, a msat string");
    assert!(fee <= 1_000, "within --max-fee: {fee}");
    let balance = setup.balance().await;
    assert_eq!(
        balance["balance"],
        (100_000 - 20_000 - fee).to_string(),
        "{balance}"
    );
}

// ---------------------------------------------------------------------------------------------
// curl's habits, errors and help

#[tokio::test]
async fn a_free_route_is_fetched_without_paying() {
    let setup = setup().await;
    let node = StandInNode::never_called().await;
    let run = cli(&[
        "pay",
        &setup.url("/"),
        "--wallet",
        "sim",
        "--sim-url",
        &node.url,
    ])
    .await;
    run.expect_code(0);
    assert_eq!(run.stdout(), FREE);
    assert_eq!(run.stderr, "", "no receipt, no progress");
    assert_eq!(node.calls(), Vec::<Value>::new());
}

#[tokio::test]
async fn without_a_wallet_a_free_route_is_fetched_and_a_402_exits_4() {
    let setup = setup().await;
    let free = cli(&["pay", &setup.url("/")]).await;
    free.expect_code(0);
    assert_eq!(free.stdout(), FREE);
    let priced = cli(&["pay", &setup.url("/weather")]).await;
    priced.expect_code(4);
    assert_eq!(priced.stdout(), "", "no body of a 402 on stdout");
    assert!(priced.stderr.contains("--wallet"), "{}", priced.stderr);
    assert!(
        priced.stderr.contains("nothing was paid"),
        "{}",
        priced.stderr
    );
}

#[tokio::test]
async fn a_server_error_exits_5() {
    let setup = setup().await;
    let node = StandInNode::never_called().await;
    let run = cli(&[
        "pay",
        &setup.url("/broken"),
        "--wallet",
        "sim",
        "--sim-url",
        &node.url,
    ])
    .await;
    run.expect_code(5);
    // As curl does, the error page is still the output.
    assert_eq!(run.stdout(), "boom");
    assert!(
        run.stderr.contains("500"),
        "the status on stderr:\n{}",
        run.stderr
    );

    // A port nobody listens on any more.
    let (listener, addr) = listen().await;
    drop(listener);
    let run = cli(&[
        "pay",
        &format!("http://{addr}/weather"),
        "--wallet",
        "sim",
        "--sim-url",
        &node.url,
    ])
    .await;
    run.expect_code(5);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout());
    assert!(run.stderr.contains("the request failed"), "{}", run.stderr);
    assert_eq!(node.calls(), Vec::<Value>::new());
}

#[tokio::test]
async fn an_amount_without_unit_is_a_usage_error_exit_2() {
    let run = cli(&[
        "pay",
        "http://127.0.0.1:9/weather",
        "--max-cost",
        "20",
        "--wallet",
        "sim",
    ])
    .await;
    run.expect_code(2);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout());
    assert!(run.stderr.contains("--max-cost"), "{}", run.stderr);
    assert!(
        run.stderr.contains("has no unit"),
        "the reason:\n{}",
        run.stderr
    );
}

#[tokio::test]
async fn help_lists_every_option_with_its_environment_variable() {
    let run = cli(&["pay", "--help"]).await;
    run.expect_code(0);
    assert_eq!(run.stderr, "", "help goes to stdout");
    let help = run.stdout();
    for variable in [
        "X402_MAX_COST",
        "X402_MAX_FEE",
        "X402_WALLET",
        "X402_WALLET_SIM_URL",
        "X402_WALLET_KEY",
        "X402_FACILITATOR_URL",
        "X402_NETWORK",
        "X402_LND_URL",
        "X402_LND_MACAROON",
        "X402_LND_TLS_CERT",
        "X402_NWC_URI",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "{variable} in `pay --help`:\n{help}"
        );
    }
    assert!(help.contains("exit codes:"), "the exit codes:\n{help}");
    for code in [
        "0 paid",
        "1 other",
        "2 usage",
        "3 refused by the budget",
        "4 payment failed",
        "5 server error",
    ] {
        assert!(help.contains(code), "exit code {code:?} in:\n{help}");
    }
}

#[tokio::test]
async fn an_output_file_that_cannot_be_created_fails_before_anything_is_paid() {
    let setup = setup().await;
    let node = StandInNode::never_called().await;
    let run = cli(&[
        "pay",
        &setup.url("/weather"),
        "-o",
        "/nonexistent-directory/weather.json",
        "--wallet",
        "sim",
        "--sim-url",
        &node.url,
        "--network",
        "lightning-regtest",
    ])
    .await;
    run.expect_code(1);
    assert!(run.stderr.contains("nothing was paid"), "{}", run.stderr);
    assert_eq!(
        node.calls(),
        Vec::<Value>::new(),
        "the wallet was never asked"
    );
}

#[tokio::test]
async fn a_url_without_a_scheme_is_http_as_curl_reads_it() {
    let setup = setup().await;
    let without = setup.url("/").replacen("http://", "", 1);
    let run = cli(&["pay", &without]).await;
    run.expect_code(0);
    assert_eq!(run.stdout(), FREE);
}

#[tokio::test]
async fn new_key_prints_a_secret_the_account_commands_take() {
    let run = cli(&["new-key"]).await;
    run.expect_code(0);
    let secret = run.stdout();
    let secret = secret.trim();
    assert_eq!(secret.len(), 64, "{secret}");
    let key = x402_lightning::v1::AccountKey::from_secret_hex(secret).expect("a key");
    assert!(run.stderr.contains(&key.account()), "{}", run.stderr);
    let again = cli(&["new-key"]).await;
    assert_ne!(again.stdout().trim(), secret, "a new one each time");
}

#[tokio::test]
async fn minus_o_writes_the_body_to_a_file_and_minus_i_includes_headers() {
    let setup = setup().await;
    let directory = tempfile::tempdir().expect("a temporary directory");
    let file = directory.path().join("weather.json");
    let run = cli(&[
        "pay",
        &setup.url("/weather"),
        "-o",
        file.to_str().expect("a UTF-8 path"),
        "--max-cost",
        "20sat",
        "--wallet",
        "sim",
        "--sim-url",
        &setup.facilitator,
        "--network",
        "lightning-regtest",
    ])
    .await;
    run.expect_code(0);
    assert!(
        run.stdout.is_empty(),
        "the body went to the file: {:?}",
        run.stdout()
    );
    assert_eq!(std::fs::read_to_string(&file).expect("written"), WEATHER);
    assert!(run.stderr.contains("paid 10 sat"), "{}", run.stderr);

    let node = StandInNode::never_called().await;
    let run = cli(&[
        "pay",
        &setup.url("/"),
        "-i",
        "--wallet",
        "sim",
        "--sim-url",
        &node.url,
    ])
    .await;
    run.expect_code(0);
    let output = run.stdout();
    let (head, body) = output
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("a head and a body: {output:?}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; charset=utf-8"),
        "{head:?}"
    );
    assert_eq!(body, FREE);
    assert_eq!(run.stderr, "");
}

#[tokio::test]
async fn data_binary_from_a_file_posts_it() {
    let setup = setup().await;
    let directory = tempfile::tempdir().expect("a temporary directory");
    let file = directory.path().join("body.bin");
    // Newlines and carriage returns that `--data-binary` keeps (and `-d` would drop).
    let bytes = b"line one\r\nline two\n\x00\xff end\n".to_vec();
    std::fs::write(&file, &bytes).expect("written");
    let data = format!("@{}", file.display());
    let run = cli(&[
        "pay",
        &setup.url("/echo"),
        "--data-binary",
        &data,
        "-H",
        "Content-Type: application/octet-stream",
        "--max-cost",
        "20sat",
        "--wallet",
        "sim",
        "--sim-url",
        &setup.facilitator,
        "--network",
        "lightning-regtest",
    ])
    .await;
    run.expect_code(0);
    assert_eq!(
        run.stdout, bytes,
        "the server got the file's bytes, unchanged"
    );
    assert!(run.stderr.contains("paid 10 sat"), "{}", run.stderr);
    receipt_hash(&run.stderr);
}

#[tokio::test]
async fn a_payment_that_fails_exits_4() {
    let setup = setup().await;
    let node = StandInNode::start(StatusCode::CONFLICT, r#"{"error":"already paid"}"#).await;
    let run = cli(&[
        "pay",
        &setup.url("/weather"),
        "--max-cost",
        "20sat",
        "--wallet",
        "sim",
        "--sim-url",
        &node.url,
        "--network",
        "lightning-regtest",
    ])
    .await;
    run.expect_code(4);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout());
    assert!(
        run.stderr.contains("already paid"),
        "the wallet's reason:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was paid"), "{}", run.stderr);
    assert!(!run.stderr.contains("paid 10 sat"), "{}", run.stderr);
    let calls = node.calls();
    assert_eq!(calls.len(), 1, "one try, not paid again: {calls:?}");
    assert!(
        calls[0]["invoice"]
            .as_str()
            .is_some_and(|invoice| invoice.starts_with("lnbcrt100n")),
        "the 10 sat regtest invoice: {calls:?}"
    );
}
