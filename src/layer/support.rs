//! What the layer learns from the facilitator itself: whether it serves the layer's network
//! (`/supported`, checked at start-up or on first use) and which node keys it hands out
//! invoices for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::config::Shared;
use crate::PublicKey;
use crate::facilitator::{Facilitator, FacilitatorError};
use crate::invoice::parse_node_id;
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
    /// `/supported` does not list `exact` on the layer's network.
    #[error("the facilitator does not support exact payments on {network}; it lists {listed:?}")]
    NetworkNotSupported {
        /// The layer's network.
        network: Network,
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
    last_attempt: Mutex<Option<Instant>>,
    payees: RwLock<Vec<PublicKey>>,
}

impl FacilitatorState {
    /// Whether this caller should run the `/supported` check now: not once it was answered, and
    /// at most once per [`RECHECK_AFTER`] until then.
    pub(crate) fn claim_check(&self) -> bool {
        self.claim_check_at(Instant::now())
    }

    fn claim_check_at(&self, now: Instant) -> bool {
        if self.answered.load(Ordering::Acquire) {
            return false;
        }
        let mut last = self
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|last| now.saturating_duration_since(last) < RECHECK_AFTER) {
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
        let Some(kind) = supported.find(self.network) else {
            return Err(SupportError::NetworkNotSupported {
                network: self.network,
                listed: supported
                    .kinds
                    .iter()
                    .map(|kind| format!("{}/{}", kind.scheme, kind.network))
                    .collect(),
            });
        };
        let announced = kind
            .extra
            .as_ref()
            .and_then(|extra| extra.pay_to.as_deref());
        if let Some(announced) = announced {
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

    /// Runs the `/supported` check once, on the first priced request, unless it already ran.
    ///
    /// Never fails the request: a facilitator that is down is retried on a later request, and
    /// one that does not serve the network is reported in the log.
    pub(crate) async fn check_support_on_first_use(&self) {
        if !self.facilitator_state.claim_check() {
            return;
        }
        if let Err(err) = self.check_support().await {
            tracing::error!(network = %self.network, error = %err, "facilitator check failed");
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
        let start = Instant::now();
        assert!(state.claim_check_at(start));
        assert!(!state.claim_check_at(start + Duration::from_secs(59)));
        assert!(state.claim_check_at(start + RECHECK_AFTER));
        state.check_answered();
        assert!(!state.claim_check_at(start + RECHECK_AFTER * 10));
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
