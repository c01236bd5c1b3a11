//! Spend limits in msat, checked before anything is paid: a maximum per payment, a total per
//! rolling period, a routing-fee cap, and the origins the client may pay at all.
//!
//! A payment **reserves** its amount plus its fee cap from the period's total before the wallet
//! is asked; once paid, the reservation shrinks to the amount plus the fee actually paid; a
//! payment that failed for good gives it back; a payment whose outcome is unknown (in flight, a
//! wallet error) keeps it, since it may still succeed. A seed-flow authorization counts in full
//! as soon as it is signed: whoever receives it can have it paid.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

/// The routing-fee cap when none is set: 1 % of the amount, rounded up, and at least 1 sat.
pub fn default_max_fee_msat(amount_msat: u64) -> u64 {
    amount_msat.div_ceil(100).max(1_000)
}

/// Spend limits. [`Budget::default`] limits nothing but the routing fee
/// ([`default_max_fee_msat`]) and pays at any origin.
///
/// ```
/// use std::time::Duration;
/// use x402_lightning::client::Budget;
///
/// let budget = Budget::default()
///     .max_per_payment_msat(20_000) // 20 sat per payment
///     .max_per_period_msat(1_000_000, Duration::from_secs(24 * 3600)) // 1,000 sat a day
///     .max_fee_msat(2_000) // 2 sat of routing fees per payment
///     .allow_origin("https://api.example.com")?;
/// # Ok::<(), x402_lightning::client::BudgetError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    max_per_payment_msat: Option<u64>,
    max_fee_msat: Option<u64>,
    per_period: Option<(u64, Duration)>,
    origins: Option<Vec<String>>,
}

impl Budget {
    /// At most `msat` per payment (the invoice amount, routing fees excluded).
    #[must_use]
    pub fn max_per_payment_msat(mut self, msat: u64) -> Self {
        self.max_per_payment_msat = Some(msat);
        self
    }

    /// At most `msat` of routing fees per payment (Lightning payments only; the seed flow's
    /// facilitator pays from the account without routing).
    #[must_use]
    pub fn max_fee_msat(mut self, msat: u64) -> Self {
        self.max_fee_msat = Some(msat);
        self
    }

    /// At most `msat` in all (amounts plus routing fees) within any rolling `period`.
    #[must_use]
    pub fn max_per_period_msat(mut self, msat: u64, period: Duration) -> Self {
        self.per_period = Some((msat, period));
        self
    }

    /// Pays at `origin` (`scheme://host[:port]`); once one origin is allowed, a 402 from any
    /// other is refused.
    ///
    /// # Errors
    ///
    /// [`BudgetError::Origin`] when `origin` is not an absolute `http(s)` URL.
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, BudgetError> {
        let origin = origin_of(origin).ok_or_else(|| BudgetError::Origin(origin.to_owned()))?;
        let origins = self.origins.get_or_insert_with(Vec::new);
        if !origins.contains(&origin) {
            origins.push(origin);
        }
        Ok(self)
    }

    /// The routing-fee cap of a payment of `amount_msat`.
    pub fn fee_limit_msat(&self, amount_msat: u64) -> u64 {
        self.max_fee_msat
            .unwrap_or_else(|| default_max_fee_msat(amount_msat))
    }

    /// The first limit that paying `amount_msat` at `url` breaks, before counting the period's
    /// spending: the origin, then the amount per payment.
    pub(crate) fn check_offer(&self, url: &str, amount_msat: u64) -> Result<(), BudgetRefusal> {
        if let Some(origins) = &self.origins {
            let origin = origin_of(url).unwrap_or_else(|| url.to_owned());
            if !origins.contains(&origin) {
                return Err(BudgetRefusal::Origin { origin });
            }
        }
        match self.max_per_payment_msat {
            Some(max_msat) if amount_msat > max_msat => Err(BudgetRefusal::PerPayment {
                amount_msat,
                max_msat,
            }),
            _ => Ok(()),
        }
    }
}

/// `scheme://host[:port]` of an absolute `http(s)` URL, as browsers serialize origins.
fn origin_of(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// A budget that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// An allowed origin that is not an absolute `http(s)` URL.
    #[error("not an http(s) origin: {0:?}")]
    Origin(String),
}

/// The limit a payment would break; nothing was paid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BudgetRefusal {
    /// The origin is not on the allow-list.
    #[error("the origin {origin} is not allowed to charge this client")]
    Origin {
        /// The origin that asked for payment.
        origin: String,
    },
    /// Above the maximum per payment.
    #[error("{amount_msat} msat is above the maximum per payment ({max_msat} msat)")]
    PerPayment {
        /// What the offer asks, in msat.
        amount_msat: u64,
        /// The maximum per payment, in msat.
        max_msat: u64,
    },
    /// The period's total would be exceeded.
    #[error(
        "{amount_msat} msat (with up to {fee_msat} msat of fees) would exceed the total of \
         {max_msat} msat per {period_secs} s: {spent_msat} msat already spent or reserved"
    )]
    PerPeriod {
        /// What the offer asks, in msat.
        amount_msat: u64,
        /// The fee cap reserved with it, in msat.
        fee_msat: u64,
        /// What the period already holds, in msat.
        spent_msat: u64,
        /// The period's total, in msat.
        max_msat: u64,
        /// The period, in seconds.
        period_secs: u64,
    },
}

impl BudgetRefusal {
    /// The limit's name: `origin` (the allow-list), `max-cost` (per payment, the CLI's
    /// `--max-cost`), `per-period` (the total per period).
    pub fn limit(&self) -> &'static str {
        match self {
            Self::Origin { .. } => "origin",
            Self::PerPayment { .. } => "max-cost",
            Self::PerPeriod { .. } => "per-period",
        }
    }
}

/// What has been spent or reserved within the budget's period: shared by every clone of a
/// payer.
#[derive(Clone, Debug)]
pub(crate) struct Spending {
    entries: Arc<Mutex<Ledger>>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Default)]
struct Ledger {
    next_id: u64,
    /// (monotonic time, msat, id), oldest first.
    entries: VecDeque<(Duration, u64, u64)>,
}

/// An amount reserved from the period's total for one payment.
#[derive(Debug)]
#[must_use = "a reservation is settled or released; one dropped stands until its period ends"]
pub(crate) struct Reservation {
    id: u64,
}

impl Default for Spending {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl Spending {
    pub(crate) fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            entries: Arc::default(),
            clock,
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // The ledger is a list of numbers: a panic elsewhere cannot leave it half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `amount_msat + fee_msat` if `budget`'s period total allows it.
    pub(crate) fn reserve(
        &self,
        budget: &Budget,
        amount_msat: u64,
        fee_msat: u64,
    ) -> Result<Reservation, BudgetRefusal> {
        let now = self.clock.monotonic();
        let total = amount_msat.saturating_add(fee_msat);
        let mut ledger = self.ledger();
        if let Some((max_msat, period)) = budget.per_period {
            while let Some(&(at, _, _)) = ledger.entries.front() {
                if now.saturating_sub(at) < period {
                    break;
                }
                ledger.entries.pop_front();
            }
            let spent_msat = ledger
                .entries
                .iter()
                .fold(0u64, |sum, &(_, msat, _)| sum.saturating_add(msat));
            if spent_msat.saturating_add(total) > max_msat {
                return Err(BudgetRefusal::PerPeriod {
                    amount_msat,
                    fee_msat,
                    spent_msat,
                    max_msat,
                    period_secs: period.as_secs(),
                });
            }
        }
        ledger.next_id += 1;
        let id = ledger.next_id;
        ledger.entries.push_back((now, total, id));
        Ok(Reservation { id })
    }

    /// The payment was made: it counts `msat` (amount plus the fee paid) from now on.
    pub(crate) fn settle(&self, reservation: Reservation, msat: u64) {
        let mut ledger = self.ledger();
        if let Some(entry) = ledger
            .entries
            .iter_mut()
            .find(|(_, _, id)| *id == reservation.id)
        {
            entry.1 = msat;
        }
    }

    /// The payment failed for good: nothing was spent.
    pub(crate) fn release(&self, reservation: Reservation) {
        self.ledger()
            .entries
            .retain(|(_, _, id)| *id != reservation.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn an_offer_above_the_maximum_per_payment_names_that_limit() {
        let budget = Budget::default().max_per_payment_msat(5_000);
        let refusal = budget
            .check_offer("http://127.0.0.1:3000/weather", 10_000)
            .expect_err("above the maximum");
        assert_eq!(refusal.limit(), "max-cost");
        assert!(refusal.to_string().contains("5000 msat"), "{refusal}");
        assert!(budget.check_offer("http://127.0.0.1:3000/", 5_000).is_ok());
    }

    #[test]
    fn only_allowed_origins_may_charge() {
        let budget = Budget::default()
            .allow_origin("http://127.0.0.1:3000/anything")
            .expect("an origin");
        assert!(
            budget
                .check_offer("http://127.0.0.1:3000/weather", 1)
                .is_ok()
        );
        let refusal = budget
            .check_offer("http://127.0.0.1:3001/weather", 1)
            .expect_err("another port");
        assert_eq!(
            refusal,
            BudgetRefusal::Origin {
                origin: "http://127.0.0.1:3001".into()
            }
        );
        assert!(Budget::default().allow_origin("not a url").is_err());
        assert!(Budget::default().allow_origin("ftp://example.com").is_err());
    }

    #[test]
    fn the_period_total_counts_reservations_and_forgets_old_spending() {
        let clock = ManualClock::at_unix(Duration::from_secs(1_700_000_000));
        let spending = Spending::with_clock(Arc::new(clock.clone()));
        let budget = Budget::default().max_per_period_msat(30_000, Duration::from_secs(60));
        let first = spending.reserve(&budget, 10_000, 1_000).expect("within");
        let second = spending.reserve(&budget, 10_000, 1_000).expect("within");
        let refusal = spending
            .reserve(&budget, 10_000, 1_000)
            .expect_err("33,000 > 30,000");
        assert_eq!(refusal.limit(), "per-period");
        // Paid with 10 msat of fees, failed: room again.
        spending.settle(first, 10_010);
        spending.release(second);
        // An unknown outcome: the reservation stands.
        let _third = spending.reserve(&budget, 10_000, 1_000).expect("21,010");
        assert!(spending.reserve(&budget, 9_000, 1_000).is_err());
        clock.advance(Duration::from_secs(60));
        assert!(spending.reserve(&budget, 29_000, 1_000).is_ok());
    }

    #[test]
    fn the_default_fee_cap_is_one_percent_and_at_least_one_sat() {
        assert_eq!(Budget::default().fee_limit_msat(10_000), 1_000);
        assert_eq!(Budget::default().fee_limit_msat(1_000_001), 10_001);
        assert_eq!(
            Budget::default().max_fee_msat(5).fee_limit_msat(1_000_000),
            5
        );
    }
}
