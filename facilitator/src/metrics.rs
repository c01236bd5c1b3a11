//! The service's Prometheus metrics (`GET /metrics`, OpenMetrics text):
//!
//! - `x402_facilitator_settles_total{outcome, reason}`: settles by outcome (`success`,
//!   `failure`: a verdict with its `errorReason`, `error`: no verdict, the store failed) and
//!   reason (`none` on success);
//! - `x402_facilitator_store_seconds{operation}`: replay-store latency (`insert`, `purge`);
//! - `x402_facilitator_purged_total`: replay entries removed after their retention;
//! - `x402_facilitator_mints_total{outcome}`: invoices minted through the node (`success`,
//!   `node_error`, `rejected`: the node's invoice failed the service's checks);
//! - `x402_facilitator_mint_seconds`: node latency of a mint;
//! - `x402_facilitator_seed_settles_total{outcome, reason}`: seed-flow (x402 v1) settles, as
//!   `settles_total`;
//! - `x402_facilitator_holds_total{outcome, reason}`: seed-flow verifies (`held`: a valid
//!   verify and its hold; `refused` with its `invalidReason`; `error`);
//! - `x402_facilitator_deposits_total{outcome, reason}`: `created`, `credited` (reason `none`);
//! - `x402_facilitator_withdrawals_total{outcome, reason}`: `succeeded`, `failed`, `pending`
//!   (202), `refused` (400/409, with the answer's reason), `error`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a settle.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SettleLabels {
    outcome: &'static str,
    reason: &'static str,
}

/// Labels of a books event: its outcome and, for a refusal, the reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BooksLabels {
    outcome: &'static str,
    reason: &'static str,
}

/// Labels of a store operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
}

/// Labels of a mint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MintLabels {
    outcome: &'static str,
}

/// How a settle ended, for [`Metrics::settle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Settled: the key was recorded.
    Success,
    /// A verdict `success: false` with this `errorReason`.
    Failure(&'static str),
    /// No verdict: the replay store failed.
    Error,
}

impl SettleOutcome {
    /// Its labels; `error` is the reason of a settle without a verdict.
    fn labels(self, error: &'static str) -> SettleLabels {
        match self {
            Self::Success => SettleLabels {
                outcome: "success",
                reason: "none",
            },
            Self::Failure(reason) => SettleLabels {
                outcome: "failure",
                reason,
            },
            Self::Error => SettleLabels {
                outcome: "error",
                reason: error,
            },
        }
    }
}

/// How a mint ended, for [`Metrics::mint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MintOutcome {
    /// The invoice was handed out.
    Success,
    /// The node failed.
    NodeError,
    /// The node's invoice failed the service's checks.
    Rejected,
}

/// The service's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    settles: Family<SettleLabels, Counter>,
    store_seconds: Family<StoreLabels, Histogram>,
    purged: Counter,
    mints: Family<MintLabels, Counter>,
    mint_seconds: Histogram,
    seed_settles: Family<SettleLabels, Counter>,
    holds: Family<BooksLabels, Counter>,
    deposits: Family<BooksLabels, Counter>,
    withdrawals: Family<BooksLabels, Counter>,
}

/// Latency buckets from 100 µs to about 6.5 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("x402_facilitator");
        let settles = Family::<SettleLabels, Counter>::default();
        registry.register("settles", "Settles by outcome and reason", settles.clone());
        let store_seconds =
            Family::<StoreLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "store_seconds",
            "Replay store latency by operation",
            store_seconds.clone(),
        );
        let purged = Counter::default();
        registry.register(
            "purged",
            "Replay entries removed after their retention",
            purged.clone(),
        );
        let mints = Family::<MintLabels, Counter>::default();
        registry.register("mints", "Invoices minted by outcome", mints.clone());
        let mint_seconds = latency_histogram();
        registry.register(
            "mint_seconds",
            "Lightning node latency of a mint",
            mint_seconds.clone(),
        );
        let seed_settles = Family::<SettleLabels, Counter>::default();
        registry.register(
            "seed_settles",
            "Seed-flow (x402 v1) settles by outcome and reason",
            seed_settles.clone(),
        );
        let holds = Family::<BooksLabels, Counter>::default();
        registry.register(
            "holds",
            "Seed-flow verifies: holds placed, or refused with a reason",
            holds.clone(),
        );
        let deposits = Family::<BooksLabels, Counter>::default();
        registry.register("deposits", "Deposits by outcome", deposits.clone());
        let withdrawals = Family::<BooksLabels, Counter>::default();
        registry.register("withdrawals", "Withdrawals by outcome", withdrawals.clone());
        Self {
            registry,
            settles,
            store_seconds,
            purged,
            mints,
            mint_seconds,
            seed_settles,
            holds,
            deposits,
            withdrawals,
        }
    }
}

impl Metrics {
    /// Counts a settle.
    pub fn settle(&self, outcome: SettleOutcome) {
        self.settles
            .get_or_create(&outcome.labels("store_unavailable"))
            .inc();
    }

    /// Counts a seed-flow settle.
    pub fn seed_settle(&self, outcome: SettleOutcome) {
        self.seed_settles
            .get_or_create(&outcome.labels("unavailable"))
            .inc();
    }

    /// Counts a seed-flow verify: `held`, `refused` (with its reason) or `error`.
    pub fn hold(&self, outcome: &'static str, reason: &'static str) {
        self.holds
            .get_or_create(&BooksLabels { outcome, reason })
            .inc();
    }

    /// Counts a deposit event: `created` or `credited`.
    pub fn deposit(&self, outcome: &'static str) {
        self.deposits
            .get_or_create(&BooksLabels {
                outcome,
                reason: "none",
            })
            .inc();
    }

    /// Counts a withdrawal event: `succeeded`, `failed`, `pending`, `refused` (with its reason)
    /// or `error`.
    pub fn withdrawal(&self, outcome: &'static str, reason: &'static str) {
        self.withdrawals
            .get_or_create(&BooksLabels { outcome, reason })
            .inc();
    }

    /// Records the latency of a store operation (`insert` or `purge`).
    pub fn store_latency(&self, operation: &'static str, elapsed: Duration) {
        self.store_seconds
            .get_or_create(&StoreLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts purged replay entries.
    pub fn purged(&self, entries: u64) {
        self.purged.inc_by(entries);
    }

    /// Counts a mint and, when the node answered, its latency.
    pub fn mint(&self, outcome: MintOutcome, node_latency: Option<Duration>) {
        let outcome = match outcome {
            MintOutcome::Success => "success",
            MintOutcome::NodeError => "node_error",
            MintOutcome::Rejected => "rejected",
        };
        self.mints.get_or_create(&MintLabels { outcome }).inc();
        if let Some(latency) = node_latency {
            self.mint_seconds.observe(latency.as_secs_f64());
        }
    }

    /// The metrics as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
