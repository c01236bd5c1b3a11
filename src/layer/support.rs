//! What the layer learns from the facilitator itself: which flows it serves on the layer's
//! network (`/supported`, asked at start-up or in the background on priced requests, and again
//! now and then), and which node keys it hands out invoices for (announced in `/supported`, or
//! payees of invoices its receiver minted).
//!
//! Two rules follow from it:
//!
//! - **A 402 offers only what can be paid.** A flow the facilitator's last answer did not list
//!   is left out of challenges (logged once when it goes, once when it comes back); until the
//!   facilitator has answered, every configured flow is offered.
//! - **A payment is never refused for what the layer does not know yet.** When a payment names
//!   a payee the layer has not heard of, the request waits for one bounded lookup (one
//!   `/supported` call, and, if that names no payee, one invoice from the receiver) before the
//!   layer judges it; a layer that still cannot tell answers 503 with `Retry-After`, never a
//!   verdict on the payment.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use super::config::Shared;
use super::detach::spawn_background;
use crate::PublicKey;
use crate::facilitator::{Facilitator, FacilitatorError};
use crate::invoice::parse_node_id;
use crate::layer::Flows;
use crate::network::Network;

/// How many announced payee keys are remembered (a facilitator may run several nodes).
const KNOWN_PAYEES: usize = 256;

/// How long after an unanswered `/supported` check, or an answer lacking one of the layer's
/// flows, the next one may run: a flow the facilitator starts serving is offered within it.
const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// How long a complete answer stands before the background check asks again (a facilitator may
/// stop serving a flow).
const REFRESH_AFTER: Duration = Duration::from_secs(600);

/// The shortest time between two lookups that requests wait for: a flood of payments to
/// unknown payees costs the facilitator at most one `/supported` call per this period.
const LOOKUP_COOLDOWN: Duration = Duration::from_secs(5);

/// The `Retry-After` of a 503 for a payee the layer could not judge: the next lookup may run
/// by then.
pub(crate) const PAYEE_RETRY_AFTER: Duration = LOOKUP_COOLDOWN;

/// Why the facilitator cannot serve the layer, as found by
/// [`X402Layer::check_facilitator`](crate::X402Layer::check_facilitator).
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    /// `/supported` could not be asked.
    #[error(transparent)]
    Facilitator(#[from] FacilitatorError),
    /// `/supported` does not list `exact` on the layer's network for one of the layer's flows
    /// (the x402 version 1 kind for the seed flow, the version 2 `lnbtc:` kind for `lnbtc`).
    /// The layer keeps working: its 402s offer only the flows listed (`served`), and it learned
    /// the `payTo` any listed kind announced.
    #[error(
        "the facilitator does not serve the flow {missing} on {network} (it serves {served}: \
         402s offer only what it serves); it lists {listed:?}",
        missing = flows.without(*served)
    )]
    NetworkNotSupported {
        /// The layer's network.
        network: Network,
        /// The flows the layer offers by default.
        flows: Flows,
        /// The flows the facilitator serves on the network; 402s offer only these.
        served: Flows,
        /// The `scheme/network` kinds it lists.
        listed: Vec<String>,
    },
    /// `/supported` announces another payee than the pinned `payTo`.
    #[error("the facilitator pays invoices to {announced}, but payTo is pinned to {pinned}")]
    PayToMismatch {
        /// The pinned node key.
        pinned: PublicKey,
        /// The node key the facilitator announces.
        announced: String,
    },
}

impl SupportError {
    /// How long the answer (or its absence) stands before the background check asks again:
    /// a missing flow or an outage soon, a facilitator that answered for good later.
    fn stands_for(&self) -> Duration {
        match self {
            SupportError::Facilitator(FacilitatorError::Status { status, .. })
                if status.is_client_error() =>
            {
                // A facilitator without `/supported`: asking every minute will not help.
                REFRESH_AFTER
            }
            SupportError::PayToMismatch { .. } => REFRESH_AFTER,
            SupportError::Facilitator(_) | SupportError::NetworkNotSupported { .. } => {
                RECHECK_AFTER
            }
        }
    }
}

/// The flows served, as stored: a bit per flow, and one saying that the facilitator answered.
const SERVED_KNOWN: u8 = 0b100;
const SERVED_V1: u8 = 0b001;
const SERVED_LNBTC: u8 = 0b010;

/// The flows stored as `bits`; `None` when nothing is known yet.
fn served_flows(bits: u8) -> Option<Flows> {
    (bits & SERVED_KNOWN != 0).then(|| Flows::new(bits & SERVED_V1 != 0, bits & SERVED_LNBTC != 0))
}

/// What the layer knows of its facilitator: when to ask `/supported` again, the flows it
/// serves, and the payees it vouched for.
#[derive(Debug, Default)]
pub(crate) struct FacilitatorState {
    /// A background check is running now (a facilitator without timeouts may never answer).
    running: AtomicBool,
    /// Monotonic time before which no background check runs; `None`: never asked.
    next_check: Mutex<Option<Duration>>,
    /// The flows served on the layer's network, as of the last answer ([`SERVED_KNOWN`] set),
    /// or nothing known yet (0).
    served: AtomicU8,
    payees: RwLock<Vec<PublicKey>>,
    /// Whether the facilitator's last `/supported` answer named its node (when it is the
    /// receiver): then it is the word on the facilitator's payees.
    announces_payee: AtomicBool,
    /// The lookups requests wait for, one at a time: the monotonic time the last one ended.
    lookup: tokio::sync::Mutex<Option<Duration>>,
}

/// A request's turn to look the facilitator up; [`finish`](Self::finish) records when it ended.
pub(crate) struct LookupTurn<'a>(tokio::sync::MutexGuard<'a, Option<Duration>>);

impl LookupTurn<'_> {
    /// The lookup ended at monotonic time `now`: requests that arrived before it take what it
    /// learned, and the next lookup waits out the cool-down.
    pub(crate) fn finish(mut self, now: Duration) {
        *self.0 = Some(now);
    }
}

impl FacilitatorState {
    /// Whether this caller should run the `/supported` check now (monotonic time `now`): when
    /// the last answer's time is up, and one caller at a time.
    pub(crate) fn claim_check(&self, now: Duration) -> bool {
        let mut next = self
            .next_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if next.is_some_and(|next| now < next) {
            return false;
        }
        // Until this check's answer decides otherwise.
        *next = Some(now.saturating_add(RECHECK_AFTER));
        true
    }

    /// The next check runs no sooner than `wait` after `asked_at`.
    fn schedule(&self, asked_at: Duration, wait: Duration) {
        *self
            .next_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(asked_at.saturating_add(wait));
    }

    /// The flows the facilitator served at its last answer; `None` before any.
    pub(crate) fn served(&self) -> Option<Flows> {
        served_flows(self.served.load(Ordering::Acquire))
    }

    /// Records the flows the facilitator serves on `network`, and logs each of the layer's
    /// `flows` that this withdraws or brings back (once per change).
    fn record_served(&self, served: Flows, flows: Flows, network: Network) {
        let bits = SERVED_KNOWN
            | if served.v1() { SERVED_V1 } else { 0 }
            | if served.lnbtc() { SERVED_LNBTC } else { 0 };
        let before = self.served.swap(bits, Ordering::AcqRel);
        if before == bits {
            return;
        }
        let was = served_flows(before).unwrap_or(Flows::BOTH);
        for flow in [Flows::V1, Flows::LNBTC] {
            let (offered, had, has) = (flows.covers(flow), was.covers(flow), served.covers(flow));
            if offered && had && !has {
                tracing::warn!(
                    %network, %flow,
                    "the facilitator does not serve this flow: 402s leave it out until it does"
                );
            } else if offered && !had && has {
                tracing::info!(%network, %flow, "the facilitator serves this flow again: 402s offer it");
            }
        }
    }

    /// Remembers a node key the facilitator hands out invoices for.
    pub(crate) fn learn_payee(&self, payee: PublicKey) {
        if self.knows(&payee) {
            return;
        }
        let mut payees = self.payees.write().unwrap_or_else(PoisonError::into_inner);
        if !payees.contains(&payee) {
            if payees.len() == KNOWN_PAYEES {
                payees.remove(0);
            }
            payees.push(payee);
        }
    }

    /// Whether the facilitator's last `/supported` answer named its node.
    pub(crate) fn announces_payee(&self) -> bool {
        self.announces_payee.load(Ordering::Acquire)
    }

    /// Whether `payee` was vouched for; `None` when no payee is known yet.
    pub(crate) fn payee_is_known(&self, payee: &PublicKey) -> Option<bool> {
        let payees = self.payees.read().unwrap_or_else(PoisonError::into_inner);
        (!payees.is_empty()).then(|| payees.contains(payee))
    }

    fn knows(&self, payee: &PublicKey) -> bool {
        self.payee_is_known(payee) == Some(true)
    }

    /// Waits for the turn of a request that arrived at monotonic time `arrived` to look the
    /// facilitator up; `None` when a lookup ended after it arrived (it waited for that one) or
    /// less than [`LOOKUP_COOLDOWN`] before `now`: what that lookup learned is all there is to
    /// know for now. So a queue of requests costs one lookup, however long each takes.
    pub(crate) async fn lookup_turn(
        &self,
        arrived: Duration,
        now: impl FnOnce() -> Duration,
    ) -> Option<LookupTurn<'_>> {
        let last = self.lookup.lock().await;
        if let Some(ended) = *last {
            if ended >= arrived || now().saturating_sub(ended) < LOOKUP_COOLDOWN {
                return None;
            }
        }
        Some(LookupTurn(last))
    }
}

impl<F: Facilitator> Shared<F> {
    /// Runs the `/supported` check now, and schedules the next one by its outcome.
    pub(crate) async fn check_support(&self) -> Result<(), SupportError> {
        let asked_at = self.clock.monotonic();
        let result = self.ask_supported().await;
        let wait = match &result {
            Ok(()) => REFRESH_AFTER,
            Err(err) => err.stands_for(),
        };
        self.facilitator_state.schedule(asked_at, wait);
        result
    }

    /// Asks `/supported` which flows the facilitator serves on this network, and learns the
    /// payee any of their kinds announces (whatever else the answer lacks).
    async fn ask_supported(&self) -> Result<(), SupportError> {
        let supported = self.facilitator.supported().await?;
        let kind = supported.find(self.network);
        let lnbtc_kind = supported.find_lnbtc(self.network);
        // Either kind may announce the payee: `extra.payTo`.
        let announced = [kind, lnbtc_kind]
            .into_iter()
            .flatten()
            .filter_map(|kind| kind.extra.as_ref()?.pay_to.as_deref());
        let mut mismatch = None;
        // With a receiver of its own, only that receiver's invoices name a payee this layer
        // trusts: the facilitator's node mints for others too (upstream "Receiver Key
        // Isolation").
        let announced = announced.filter(|_| self.receiver.is_none());
        let mut named = false;
        for announced in announced {
            match (parse_node_id(announced), self.pay_to) {
                (Ok(key), Some(pinned)) if key != pinned => {
                    mismatch.get_or_insert(SupportError::PayToMismatch {
                        pinned,
                        announced: announced.to_owned(),
                    });
                }
                (Ok(key), _) => {
                    named = true;
                    self.facilitator_state.learn_payee(key);
                }
                (Err(_), _) => {
                    tracing::warn!(pay_to = announced, "facilitator announces an invalid payTo");
                }
            }
        }
        self.facilitator_state
            .announces_payee
            .store(named, Ordering::Release);
        let served = Flows::new(kind.is_some(), lnbtc_kind.is_some());
        self.facilitator_state
            .record_served(served, self.flows, self.network);
        if let Some(mismatch) = mismatch {
            return Err(mismatch);
        }
        if !served.covers(self.flows) {
            return Err(SupportError::NetworkNotSupported {
                network: self.network,
                flows: self.flows,
                served,
                listed: supported
                    .kinds
                    .iter()
                    .map(|kind| format!("{}/{}", kind.scheme, kind.network))
                    .collect(),
            });
        }
        Ok(())
    }

    /// The flows a route configured with `flows` offers in its 402s: those the facilitator
    /// serves, or all of them until it has answered.
    pub(crate) fn offered(&self, flows: Flows) -> Flows {
        match self.facilitator_state.served() {
            Some(served) => flows.intersect(served),
            None => flows,
        }
    }

    /// Starts the `/supported` check in the background on a priced request, unless one is
    /// running or the last answer still stands.
    ///
    /// No request waits for it: a facilitator that hangs must cost a client one timeout, not
    /// two. A facilitator that does not serve the network is reported in the log. Without a
    /// tokio runtime the check cannot run in the background and is skipped: call
    /// [`X402Layer::check_facilitator`](crate::X402Layer::check_facilitator) at start-up.
    pub(crate) fn check_support_in_background(self: &Arc<Self>) {
        let state = &self.facilitator_state;
        // One check at a time; `claim_check` lets one caller through per period, so the flag
        // is set by that caller alone.
        if state.running.load(Ordering::Acquire) || !state.claim_check(self.clock.monotonic()) {
            return;
        }
        state.running.store(true, Ordering::Release);
        let shared = Arc::clone(self);
        let started = spawn_background(async move {
            // Cleared however the check ends, a panicking facilitator included.
            let _running = ClearOnDrop(&shared.facilitator_state.running);
            if let Err(err) = shared.check_support().await {
                tracing::error!(network = %shared.network, error = %err, "facilitator check failed");
            }
        });
        if !started {
            state.running.store(false, Ordering::Release);
            tracing::debug!(
                "no tokio runtime: the facilitator check is left to check_facilitator()"
            );
        }
    }
}

/// Clears a flag when dropped.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator point G and 2G: two valid node keys.
    const G: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    const G2: &str = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";

    #[test]
    fn the_check_runs_when_the_last_answer_no_longer_stands() {
        let state = FacilitatorState::default();
        let start = Duration::from_secs(5);
        assert!(state.claim_check(start));
        assert!(!state.claim_check(start + Duration::from_secs(59)));
        assert!(state.claim_check(start + RECHECK_AFTER));
        // A complete answer stands longer.
        state.schedule(start + RECHECK_AFTER, REFRESH_AFTER);
        assert!(!state.claim_check(start + RECHECK_AFTER * 2));
        assert!(state.claim_check(start + RECHECK_AFTER + REFRESH_AFTER));
    }

    #[test]
    fn a_status_4xx_stands_longer_than_an_outage_or_a_missing_flow() {
        let status = |status| {
            SupportError::Facilitator(FacilitatorError::Status {
                call: crate::FacilitatorCall::Supported,
                status,
                body_excerpt: String::new(),
            })
        };
        assert_eq!(
            status(http::StatusCode::NOT_FOUND).stands_for(),
            REFRESH_AFTER
        );
        assert_eq!(
            status(http::StatusCode::SERVICE_UNAVAILABLE).stands_for(),
            RECHECK_AFTER
        );
        let missing = SupportError::NetworkNotSupported {
            network: Network::Regtest,
            flows: Flows::BOTH,
            served: Flows::LNBTC,
            listed: Vec::new(),
        };
        assert_eq!(missing.stands_for(), RECHECK_AFTER);
    }

    #[test]
    fn payees_are_unknown_until_one_is_announced() {
        let state = FacilitatorState::default();
        let (a, b) = (parse_node_id(G).unwrap(), parse_node_id(G2).unwrap());
        assert_eq!(state.payee_is_known(&a), None);
        state.learn_payee(a);
        assert_eq!(state.payee_is_known(&a), Some(true));
        assert_eq!(state.payee_is_known(&b), Some(false));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lookup_serves_every_request_that_arrived_before_it_ended() {
        let state = FacilitatorState::default();
        let at = Duration::from_secs;
        // The first request looks up, and its lookup ends at 30 s (a slow facilitator).
        let turn = state
            .lookup_turn(at(1), || at(1))
            .await
            .expect("first turn");
        turn.finish(at(30));
        // A request that arrived meanwhile takes that result, however late its turn comes.
        assert!(state.lookup_turn(at(2), || at(40)).await.is_none());
        // One that arrived later waits out the cool-down after the end.
        assert!(state.lookup_turn(at(31), || at(34)).await.is_none());
        assert!(state.lookup_turn(at(31), || at(35)).await.is_some());
    }

    #[test]
    fn served_flows_are_unknown_until_recorded() {
        let state = FacilitatorState::default();
        assert_eq!(state.served(), None);
        state.record_served(Flows::LNBTC, Flows::BOTH, Network::Regtest);
        assert_eq!(state.served(), Some(Flows::LNBTC));
        state.record_served(Flows::BOTH, Flows::BOTH, Network::Regtest);
        assert_eq!(state.served(), Some(Flows::BOTH));
        state.record_served(Flows::NONE, Flows::BOTH, Network::Regtest);
        assert_eq!(state.served(), Some(Flows::NONE));
    }
}
