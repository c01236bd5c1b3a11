//! Per-invoice bookkeeping of the layer: which invoices it recently handed out, which are being
//! processed right now, and which were recently settled here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
#[cfg(feature = "paywall")]
use std::time::Duration;

use crate::invoice::CheckedInvoice;

/// A payment hash: the identity of an invoice.
pub(crate) type PaymentHash = [u8; 32];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded sets stay consistent even if a holder panicked: every update is one call.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The invoices some request is processing now; at most one request per invoice.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    hashes: Mutex<HashSet<PaymentHash>>,
}

impl InFlight {
    /// Claims `hash` until the returned guard drops, or `None` when another request holds it.
    pub(crate) fn try_claim(self: &Arc<Self>, hash: PaymentHash) -> Option<InFlightGuard> {
        lock(&self.hashes).insert(hash).then(|| InFlightGuard {
            in_flight: Arc::clone(self),
            hash,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.hashes).len()
    }
}

/// Releases an invoice claimed with [`InFlight::try_claim`] when dropped, including when the
/// request's future is dropped half-way.
#[derive(Debug)]
pub(crate) struct InFlightGuard {
    in_flight: Arc<InFlight>,
    hash: PaymentHash,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        lock(&self.in_flight.hashes).remove(&self.hash);
    }
}

/// The last `capacity` invoices settled here, oldest forgotten first.
#[derive(Debug)]
pub(crate) struct SettledInvoices {
    inner: Mutex<Remembered>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Remembered {
    set: HashSet<PaymentHash>,
    order: VecDeque<PaymentHash>,
}

impl SettledInvoices {
    /// Remembers at most `capacity` invoices (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Mutex::new(Remembered::default()),
            capacity,
        }
    }

    /// Whether `hash` was settled here and is still remembered.
    pub(crate) fn contains(&self, hash: &PaymentHash) -> bool {
        lock(&self.inner).set.contains(hash)
    }

    /// Remembers `hash`, forgetting the oldest invoice when full.
    pub(crate) fn insert(&self, hash: PaymentHash) {
        let mut remembered = lock(&self.inner);
        if !remembered.set.insert(hash) {
            return;
        }
        remembered.order.push_back(hash);
        if remembered.order.len() > self.capacity {
            if let Some(oldest) = remembered.order.pop_front() {
                remembered.set.remove(&oldest);
            }
        }
    }

    /// How many invoices are remembered.
    #[cfg(any(test, feature = "internals"))]
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).order.len()
    }
}

/// The last `capacity` invoices the layer checked and handed out in a 402, by their exact text.
///
/// A payment usually carries one of them: its pre-check then re-checks the remembered facts
/// (network, amount, payee, expiry) instead of parsing the invoice and recovering its payee
/// from the signature again, which is most of the layer's own time on the paid path. The key is
/// the whole invoice text, so only a byte-for-byte copy of an invoice that passed
/// `check_requirements_answer` is found.
#[derive(Debug)]
pub(crate) struct IssuedInvoices {
    inner: Mutex<Issued>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Issued {
    by_text: HashMap<Arc<str>, CheckedInvoice>,
    /// Insertion order; may still hold invoices already taken (they count toward the bound).
    order: VecDeque<Arc<str>>,
}

impl IssuedInvoices {
    /// Remembers at most `capacity` invoices (none when zero).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Issued::default()),
            capacity,
        }
    }

    /// Remembers `invoice` (its text) as checked into `checked`, forgetting the oldest when full.
    pub(crate) fn remember(&self, invoice: &str, checked: CheckedInvoice) {
        if self.capacity == 0 {
            return;
        }
        let text: Arc<str> = Arc::from(invoice);
        let mut issued = lock(&self.inner);
        if issued.order.len() >= self.capacity {
            if let Some(oldest) = issued.order.pop_front() {
                issued.by_text.remove(&oldest);
            }
        }
        issued.order.push_back(Arc::clone(&text));
        issued.by_text.insert(text, checked);
    }

    /// The checked form of `invoice` if it was handed out here and not taken since.
    /// Whether `invoice` was handed out recently and not yet taken.
    pub(crate) fn contains(&self, invoice: &str) -> bool {
        lock(&self.inner).by_text.contains_key(invoice)
    }

    pub(crate) fn take(&self, invoice: &str) -> Option<CheckedInvoice> {
        lock(&self.inner).by_text.remove(invoice)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.inner).by_text.len()
    }
}

/// What the layer last heard of the invoices paywall pages poll, by payment hash: so that the
/// receiver is asked about each at most once an interval, and a poll in between gets the last
/// answer. Bounded: beyond `capacity` the oldest entry is forgotten (its next poll asks again).
#[cfg(feature = "paywall")]
#[derive(Debug)]
pub(crate) struct PollMemory {
    inner: Mutex<Polled>,
    capacity: usize,
}

#[cfg(feature = "paywall")]
#[derive(Debug, Default)]
struct Polled {
    by_hash: HashMap<PaymentHash, Heard>,
    order: VecDeque<PaymentHash>,
}

/// The receiver's last answer about an invoice.
#[cfg(feature = "paywall")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LastHeard {
    /// Being asked now, or not paid yet.
    Open,
    /// Paid: its preimage (64 lowercase hex). Final.
    Paid(String),
    /// Cancelled. Final.
    Cancelled,
}

#[cfg(feature = "paywall")]
#[derive(Debug)]
struct Heard {
    /// When the receiver was last asked (the layer's monotonic clock).
    asked_at: Duration,
    answer: LastHeard,
}

/// What a poll should do: ask the receiver (the layer now counts as asking), or answer with
/// what was last heard.
#[cfg(feature = "paywall")]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PollTurn {
    Ask,
    Answer(LastHeard),
}

#[cfg(feature = "paywall")]
impl PollMemory {
    /// Remembers at most `capacity` invoices (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Polled::default()),
            capacity: capacity.max(1),
        }
    }

    /// The turn of a poll of `hash` at `now`: [`PollTurn::Ask`] when the receiver was not asked
    /// within `interval` and its last answer was not final (then `now` counts as asked), else
    /// the last answer.
    pub(crate) fn turn(&self, hash: PaymentHash, now: Duration, interval: Duration) -> PollTurn {
        let mut polled = lock(&self.inner);
        if let Some(heard) = polled.by_hash.get_mut(&hash) {
            let due = now.saturating_sub(heard.asked_at) >= interval;
            if heard.answer != LastHeard::Open || !due {
                return PollTurn::Answer(heard.answer.clone());
            }
            heard.asked_at = now;
            return PollTurn::Ask;
        }
        polled.by_hash.insert(
            hash,
            Heard {
                asked_at: now,
                answer: LastHeard::Open,
            },
        );
        polled.order.push_back(hash);
        if polled.order.len() > self.capacity {
            if let Some(oldest) = polled.order.pop_front() {
                polled.by_hash.remove(&oldest);
            }
        }
        PollTurn::Ask
    }

    /// Records the receiver's answer about `hash` (if `hash` is still remembered).
    pub(crate) fn heard(&self, hash: &PaymentHash, answer: LastHeard) {
        if let Some(heard) = lock(&self.inner).by_hash.get_mut(hash) {
            heard.answer = answer;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_is_claimed_by_one_request_until_its_guard_drops() {
        let in_flight = Arc::new(InFlight::default());
        let guard = in_flight.try_claim([1; 32]).unwrap();
        assert!(in_flight.try_claim([1; 32]).is_none());
        assert!(in_flight.try_claim([2; 32]).is_some());
        drop(guard);
        assert!(in_flight.try_claim([1; 32]).is_some());
        assert_eq!(in_flight.len(), 0);
    }

    #[test]
    fn settled_memory_forgets_the_oldest_beyond_its_capacity() {
        let settled = SettledInvoices::new(2);
        settled.insert([1; 32]);
        settled.insert([2; 32]);
        settled.insert([2; 32]);
        assert_eq!(settled.len(), 2);
        settled.insert([3; 32]);
        assert!(!settled.contains(&[1; 32]));
        assert!(settled.contains(&[2; 32]) && settled.contains(&[3; 32]));
        assert_eq!(settled.len(), 2);
    }

    #[cfg(feature = "mock")]
    #[test]
    fn issued_invoices_are_taken_once_and_bounded() {
        use crate::invoice::{InvoiceExpectation, check_invoice, unix_now};
        use crate::mock::{InvoiceSpec, MockNode};
        use crate::network::Network;

        let node = MockNode::random();
        let minted: Vec<(String, CheckedInvoice)> = (0..3)
            .map(|_| {
                let spec = InvoiceSpec::new(Network::Regtest, 1_000);
                let text = node.mint(&spec).unwrap().invoice.to_string();
                let expected = InvoiceExpectation::new(Network::Regtest);
                let checked = check_invoice(&text, &expected, unix_now()).unwrap();
                (text, checked)
            })
            .collect();
        let issued = IssuedInvoices::new(2);
        for (text, checked) in &minted {
            issued.remember(text, checked.clone());
        }
        assert_eq!(issued.len(), 2);
        assert_eq!(issued.take(&minted[0].0), None, "the oldest is forgotten");
        assert_eq!(issued.take(&minted[2].0).as_ref(), Some(&minted[2].1));
        assert_eq!(issued.take(&minted[2].0), None, "taken once");
        assert_eq!(issued.take(&minted[1].0[1..]), None, "only the exact text");

        let none = IssuedInvoices::new(0);
        none.remember(&minted[0].0, minted[0].1.clone());
        assert_eq!(none.take(&minted[0].0), None);
    }

    #[cfg(feature = "paywall")]
    #[test]
    fn polls_ask_once_an_interval_remember_final_answers_and_are_bounded() {
        let memory = PollMemory::new(2);
        let second = Duration::from_secs(1);
        let at = |millis| Duration::from_millis(millis);
        assert_eq!(memory.turn([1; 32], at(0), second), PollTurn::Ask);
        assert_eq!(
            memory.turn([1; 32], at(500), second),
            PollTurn::Answer(LastHeard::Open)
        );
        assert_eq!(memory.turn([1; 32], at(1_000), second), PollTurn::Ask);
        memory.heard(&[1; 32], LastHeard::Paid("ab".repeat(32)));
        assert_eq!(
            memory.turn([1; 32], at(9_000), second),
            PollTurn::Answer(LastHeard::Paid("ab".repeat(32))),
            "a final answer is not asked again"
        );
        assert_eq!(memory.turn([2; 32], at(9_000), second), PollTurn::Ask);
        assert_eq!(memory.turn([3; 32], at(9_000), second), PollTurn::Ask);
        assert_eq!(
            memory.turn([1; 32], at(9_000), second),
            PollTurn::Ask,
            "the oldest is forgotten, and asked about again"
        );
    }
}
