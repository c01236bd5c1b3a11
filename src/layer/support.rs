//! What the layer learns from the facilitator itself: whether it serves the layer's network
//! (`/supported`, checked at start-up or in the background after the first priced request) and
//! which node keys it hands out invoices for (announced in `/supported`, or payees of the
//! invoices it handed out in 402s).

use std::sync::atomic::{AtomicBool, Ordering};
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

/// How long after an unanswered `/supported` check the next one may run, so an outage does not
/// add a call to every priced request.
const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// Why the facilitator cannot serve the layer, as found by
/// [`X402Layer::check_facilitator`](crate::X402Layer::check_facilitator).
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    /// `/supported` could not be asked.
    #[error(transparent)]
    Facilitator(#[from] FacilitatorError),
    /// `/supported` does not list `exact` on the layer's network for one of the layer's flows
    /// (the x402 version 1 kind for the seed flow, the version 2 `lnbtc:` kind for `lnbtc`).
    #[error(
        "the facilitator does not support exact payments on {network} for the flows {flows}; it lists {listed:?}"
    )]
    NetworkNotSupported {
        /// The layer's network.
        network: Network,
        /// The flows the layer offers by default.
        flows: Flows,
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
    /// Whether the facilitator answered (so asking again will not help): a verdict, or a 4xx
    /// status such as a facilitator without `/supported`.
    pub(crate) fn is_answer(&self) -> bool {
        match self {
            SupportError::Facilitator(FacilitatorError::Status { status, .. }) => {
                status.is_client_error()
            }
            SupportError::Facilitator(_) => false,
            SupportError::NetworkNotSupported { .. } | SupportError::PayToMismatch { .. } => true,
        }
    }
}

/// The facilitator check's progress and the payees the facilitator announced.
#[derive(Debug, Default)]
pub(crate) struct FacilitatorState {
    answered: AtomicBool,
    /// A check is running now (a facilitator without timeouts may never answer one).
    running: AtomicBool,
    /// Monotonic time of the last attempt.
    last_attempt: Mutex<Option<Duration>>,
    payees: RwLock<Vec<PublicKey>>,
}

impl FacilitatorState {
    /// Whether this caller should run the `/supported` check now (monotonic time `now`): not
    /// once it was answered, and at most once per [`RECHECK_AFTER`] until then.
    pub(crate) fn claim_check(&self, now: Duration) -> bool {
        if self.answered.load(Ordering::Acquire) {
            return false;
        }
        let mut last = self
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|last| now.saturating_sub(last) < RECHECK_AFTER) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Records that the facilitator answered a check: no more checks are needed.
    pub(crate) fn check_answered(&self) {
        self.answered.store(true, Ordering::Release);
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

    /// Whether `payee` was announced; `None` when no payee is known yet.
    pub(crate) fn payee_is_known(&self, payee: &PublicKey) -> Option<bool> {
        let payees = self.payees.read().unwrap_or_else(PoisonError::into_inner);
        (!payees.is_empty()).then(|| payees.contains(payee))
    }

    fn knows(&self, payee: &PublicKey) -> bool {
        self.payee_is_known(payee) == Some(true)
    }
}

impl<F: Facilitator> Shared<F> {
    /// Runs the `/supported` check now; once the facilitator answered, it is done for good.
    pub(crate) async fn check_support(&self) -> Result<(), SupportError> {
        let result = self.ask_supported().await;
        if result
            .as_ref()
            .map_or_else(SupportError::is_answer, |()| true)
        {
            self.facilitator_state.check_answered();
        }
        result
    }

    /// Asks `/supported` whether the facilitator serves this network, and learns its payee.
    async fn ask_supported(&self) -> Result<(), SupportError> {
        let supported = self.facilitator.supported().await?;
        let kind = supported.find(self.network);
        let lnbtc_kind = supported.find_lnbtc(self.network);
        if (self.flows.v1() && kind.is_none()) || (self.flows.lnbtc() && lnbtc_kind.is_none()) {
            return Err(SupportError::NetworkNotSupported {
                network: self.network,
                flows: self.flows,
                listed: supported
                    .kinds
                    .iter()
                    .map(|kind| format!("{}/{}", kind.scheme, kind.network))
                    .collect(),
            });
        }
        // Either kind may announce the payee: `extra.payTo`.
        let announced = [kind, lnbtc_kind]
            .into_iter()
            .flatten()
            .filter_map(|kind| kind.extra.as_ref()?.pay_to.as_deref());
        for announced in announced {
            match (parse_node_id(announced), self.pay_to) {
                (Ok(key), Some(pinned)) if key != pinned => {
                    return Err(SupportError::PayToMismatch {
                        pinned,
                        announced: announced.to_owned(),
                    });
                }
                (Ok(key), _) => self.facilitator_state.learn_payee(key),
                (Err(_), _) => {
                    tracing::warn!(pay_to = announced, "facilitator announces an invalid payTo");
                }
            }
        }
        Ok(())
    }

    /// Starts the `/supported` check in the background on a priced request, unless it already
    /// ran (or ran less than a minute ago without an answer).
    ///
    /// No request waits for it: a facilitator that hangs must cost a client one timeout, not
    /// two. A facilitator that does not serve the network is reported in the log. Without a
    /// tokio runtime the check cannot run in the background and is skipped: call
    /// [`X402Layer::check_facilitator`](crate::X402Layer::check_facilitator) at start-up.
    pub(crate) fn check_support_in_background(self: &Arc<Self>) {
        let state = &self.facilitator_state;
        // One check at a time; `claim_check` lets one caller a minute through, so the flag is
        // set by that caller alone.
        if state.running.load(Ordering::Acquire) || !state.claim_check(self.clock.monotonic()) {
            return;
        }
        state.running.store(true, Ordering::Release);
        let shared = Arc::clone(self);
        let started = spawn_background(async move {
            if let Err(err) = shared.check_support().await {
                tracing::error!(network = %shared.network, error = %err, "facilitator check failed");
            }
            shared
                .facilitator_state
                .running
                .store(false, Ordering::Release);
        });
        if !started {
            state.running.store(false, Ordering::Release);
            tracing::debug!(
                "no tokio runtime: the facilitator check is left to check_facilitator()"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator point G and 2G: two valid node keys.
    const G: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    const G2: &str = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";

    #[test]
    fn the_check_runs_once_a_minute_until_answered() {
        let state = FacilitatorState::default();
        let start = Duration::from_secs(5);
        assert!(state.claim_check(start));
        assert!(!state.claim_check(start + Duration::from_secs(59)));
        assert!(state.claim_check(start + RECHECK_AFTER));
        state.check_answered();
        assert!(!state.claim_check(start + RECHECK_AFTER * 10));
    }

    #[test]
    fn a_status_4xx_is_an_answer_and_outages_are_not() {
        let status = |status| {
            SupportError::Facilitator(FacilitatorError::Status {
                call: crate::FacilitatorCall::Supported,
                status,
                body_excerpt: String::new(),
            })
        };
        assert!(status(http::StatusCode::NOT_FOUND).is_answer());
        assert!(!status(http::StatusCode::SERVICE_UNAVAILABLE).is_answer());
        let timeout = SupportError::Facilitator(FacilitatorError::Timeout {
            call: crate::FacilitatorCall::Supported,
            after: Duration::from_secs(1),
        });
        assert!(!timeout.is_answer());
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
}
