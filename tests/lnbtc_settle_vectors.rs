//! The upstream `facilitator_settle` vectors of scheme `exact` on `lnbtc`, one test per vector.
//!
//! The fixture `fixtures/lnbtc/facilitator_settle.json` carries upstream's figures (ids, base,
//! JSON-patch steps, clocks and expectations) without its prose. Each step patches the base
//! (`requirements` and `payload`), runs [`validate`] with upstream's two networks and the step's
//! skew, then records the replay key in the vector's own replay set: a key already there is
//! `duplicate_settlement` (step `"replay"`).

use std::collections::{BTreeSet, HashSet};
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Value, json};
use x402_lightning::Network;
use x402_lightning::lnbtc::reason;
use x402_lightning::lnbtc::settle::{SettlePolicy, validate};

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
    /// A step number (1–7), or `"replay"` for the replay store's refusal.
    step: Option<Value>,
    transaction: Option<String>,
    network: Option<String>,
    replay_key: Option<String>,
    retain_until_at_least: Option<u64>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    serde_json::from_str(include_str!("fixtures/lnbtc/facilitator_settle.json"))
        .expect("the facilitator_settle fixture parses")
});

/// What one step produced: a settled proof, or a refusal with its reason and step.
#[derive(Debug)]
enum Outcome {
    Settled {
        transaction: String,
        network: String,
        replay_key: String,
        retain_until: u64,
    },
    Refused {
        reason: String,
        step: Value,
    },
}

fn run_vector(id: &str) {
    let case = FIXTURE
        .cases
        .iter()
        .find(|case| case.id == id)
        .unwrap_or_else(|| panic!("vector {id}: not in the fixture"));
    let mut replay_store = HashSet::new();
    for (index, step) in case.steps.iter().enumerate() {
        let context = format!("vector {id}, step {}", index + 1);
        let mut document = FIXTURE.base.clone();
        json_patch::patch(&mut document, &step.patch)
            .unwrap_or_else(|err| panic!("{context}: patch does not apply: {err}"));
        let policy = SettlePolicy {
            networks: Network::LNBTC_UPSTREAM.to_vec(),
            skew_secs: step.skew,
        };
        let outcome = match validate(
            &document["payload"],
            &document["requirements"],
            &policy,
            step.now,
        ) {
            Err(rejection) => Outcome::Refused {
                reason: rejection.reason.to_owned(),
                step: json!(rejection.step),
            },
            Ok(proof) if !replay_store.insert(proof.replay_key.clone()) => Outcome::Refused {
                reason: reason::DUPLICATE_SETTLEMENT.to_owned(),
                step: json!("replay"),
            },
            Ok(proof) => {
                let response = proof.success_response();
                assert!(response.success && response.payer.is_none(), "{context}");
                Outcome::Settled {
                    transaction: response.transaction,
                    network: response.network,
                    replay_key: proof.replay_key,
                    retain_until: proof.retain_until,
                }
            }
        };
        check_step(&context, &step.expect, &outcome);
    }
}

fn check_step(context: &str, expect: &Expect, outcome: &Outcome) {
    match outcome {
        Outcome::Settled {
            transaction,
            network,
            replay_key,
            retain_until,
        } => {
            assert!(expect.success, "{context}: settled, expected {expect:?}");
            assert_eq!(
                Some(transaction),
                expect.transaction.as_ref(),
                "{context}: transaction"
            );
            assert_eq!(Some(network), expect.network.as_ref(), "{context}: network");
            assert_eq!(
                Some(replay_key),
                expect.replay_key.as_ref(),
                "{context}: replay key"
            );
            let at_least = expect
                .retain_until_at_least
                .unwrap_or_else(|| panic!("{context}: no retain_until_at_least"));
            assert!(
                *retain_until >= at_least,
                "{context}: retained until {retain_until}, at least {at_least} expected"
            );
        }
        Outcome::Refused { reason, step } => {
            assert!(
                !expect.success,
                "{context}: refused with {reason} at step {step}"
            );
            assert_eq!(
                Some(reason),
                expect.error_reason.as_ref(),
                "{context}: reason"
            );
            assert_eq!(Some(step), expect.step.as_ref(), "{context}: step");
        }
    }
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

    include!("fixtures/lnbtc/facilitator_settle_ids.rs");

    #[test]
    fn every_fixture_vector_has_its_own_test() {
        let fixture: BTreeSet<&str> = FIXTURE.cases.iter().map(|case| case.id.as_str()).collect();
        let generated: BTreeSet<&str> = GENERATED.iter().copied().collect();
        assert_eq!(
            fixture.len(),
            FIXTURE.cases.len(),
            "duplicate ids in the fixture"
        );
        assert_eq!(generated.len(), GENERATED.len(), "a vector has two tests");
        assert_eq!(fixture, generated);
        assert_eq!(fixture.len(), 79);
    }
}
