//! The upstream `facilitator_settle` vectors of `exact` on `lnbtc`, one test per vector, over
//! HTTP against the running service: each case starts the service binary on a fresh SQLite
//! file with its clock pinned (`X402_FACILITATOR_TEST_NOW`) and its skew set as the vector says,
//! sends each step's `/settle`, and checks the answer and, on success, the replay entry the
//! service wrote (its key, and a retention no shorter than the vector's).
//!
//! The figures are the root crate's fixture `tests/fixtures/lnbtc/facilitator_settle.json`.

mod common;

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row as _;

use self::common::{Instance, sqlite_url};

#[derive(Debug, Deserialize)]
struct Fixture {
    base: Value,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    id: String,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
struct Step {
    now: u64,
    skew: u64,
    patch: json_patch::Patch,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
struct Expect {
    success: bool,
    error_reason: Option<String>,
    transaction: Option<String>,
    network: Option<String>,
    replay_key: Option<String>,
    retain_until_at_least: Option<u64>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    serde_json::from_str(include_str!(
        "../../tests/fixtures/lnbtc/facilitator_settle.json"
    ))
    .expect("the facilitator_settle fixture parses")
});

/// Upstream's two networks: the vectors use both.
const NETWORKS: &str =
    "lnbtc:000000000019d6689c085ae165831e93,lnbtc:000000000933ea01ad0ee984209779ba";

fn run_vector(id: &str) {
    let case = FIXTURE
        .cases
        .iter()
        .find(|case| case.id == id)
        .unwrap_or_else(|| panic!("vector {id}: not in the fixture"));
    // One service per case: its steps share the store, and their clock and skew.
    let first = &case.steps[0];
    assert!(
        case.steps
            .iter()
            .all(|step| (step.now, step.skew) == (first.now, first.skew)),
        "vector {id}: steps at different clocks need one service each"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let database = sqlite_url(dir.path());
    let service = Instance::start(
        dir.path(),
        &[
            ("X402_FACILITATOR_DATABASE_URL", &database),
            ("X402_FACILITATOR_NETWORKS", NETWORKS),
            ("X402_FACILITATOR_SKEW_SECONDS", &first.skew.to_string()),
            ("X402_FACILITATOR_TEST_NOW", &first.now.to_string()),
        ],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for (index, step) in case.steps.iter().enumerate() {
            let context = format!("vector {id}, step {}", index + 1);
            let mut document = FIXTURE.base.clone();
            json_patch::patch(&mut document, &step.patch)
                .unwrap_or_else(|err| panic!("{context}: patch does not apply: {err}"));
            let body = json!({
                "x402Version": 2,
                "paymentPayload": document["payload"],
                "paymentRequirements": document["requirements"],
            });
            let response = client
                .post(service.url("/settle"))
                .json(&body)
                .send()
                .await
                .unwrap_or_else(|err| panic!("{context}: {err}"));
            assert_eq!(response.status(), 200, "{context}: a verdict is a 200");
            let answer: Value = response.json().await.expect("JSON answer");
            check_step(&context, &step.expect, &answer, &database).await;
        }
    });
}

async fn check_step(context: &str, expect: &Expect, answer: &Value, database: &str) {
    assert_eq!(
        answer["success"].as_bool(),
        Some(expect.success),
        "{context}: {answer}"
    );
    assert!(answer.get("payer").is_none(), "{context}: payer is omitted");
    if !expect.success {
        assert_eq!(
            answer["errorReason"].as_str(),
            expect.error_reason.as_deref(),
            "{context}: errorReason"
        );
        assert_eq!(answer["transaction"], "", "{context}: transaction");
        return;
    }
    assert!(answer.get("errorReason").is_none(), "{context}: {answer}");
    assert_eq!(
        answer["transaction"].as_str(),
        expect.transaction.as_deref(),
        "{context}: transaction"
    );
    assert_eq!(
        answer["network"].as_str(),
        expect.network.as_deref(),
        "{context}: network"
    );
    // The replay entry the service wrote: the canonical key, kept long enough.
    let key = expect
        .replay_key
        .as_deref()
        .unwrap_or_else(|| panic!("{context}: no replay key expected"));
    let at_least = expect
        .retain_until_at_least
        .unwrap_or_else(|| panic!("{context}: no retain_until_at_least"));
    let pool = sqlx::SqlitePool::connect(database)
        .await
        .expect("opens the store");
    let row = sqlx::query("SELECT retain_until FROM replay_keys WHERE replay_key = $1")
        .bind(key)
        .fetch_optional(&pool)
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("{context}: no replay entry {key}"));
    let retain_until: i64 = row.get(0);
    assert!(
        u64::try_from(retain_until).is_ok_and(|retained| retained >= at_least),
        "{context}: retained until {retain_until}, at least {at_least} expected"
    );
    pool.close().await;
}

macro_rules! vectors {
    ($($name:ident => $id:literal,)*) => {
        $(
            #[test]
            fn $name() {
                super::run_vector($id);
            }
        )*
        /// The vector ids with a generated test.
        const GENERATED: &[&str] = &[$($id),*];
    };
}

mod facilitator_settle {
    use super::*;

    include!("../../tests/fixtures/lnbtc/facilitator_settle_ids.rs");

    #[test]
    fn every_fixture_vector_has_its_own_test() {
        let fixture: BTreeSet<&str> = FIXTURE.cases.iter().map(|case| case.id.as_str()).collect();
        let generated: BTreeSet<&str> = GENERATED.iter().copied().collect();
        assert_eq!(generated.len(), GENERATED.len(), "a vector has two tests");
        assert_eq!(fixture, generated);
        assert_eq!(fixture.len(), 79);
    }
}
