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

/// The last `capacity` invoices the layer offered on a paywall page, by payment hash: only
/// these may be polled, and each is asked about at most once per interval.
#[cfg(feature = "paywall")]
#[derive(Debug)]
pub(crate) struct PagedInvoices {
    inner: Mutex<Paged>,
    capacity: usize,
}

#[cfg(feature = "paywall")]
#[derive(Debug, Default)]
struct Paged {
    by_hash: HashMap<PaymentHash, PagedInvoice>,
    order: VecDeque<PaymentHash>,
}

/// An invoice offered on a page.
#[cfg(feature = "paywall")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PagedInvoice {
    /// When it expires, in Unix seconds.
    pub(crate) expires_at: u64,
    /// When its receiver was last asked about it (the layer's monotonic clock).
    asked_at: Option<Duration>,
}

#[cfg(feature = "paywall")]
impl PagedInvoices {
    /// Remembers at most `capacity` invoices (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Paged::default()),
            capacity: capacity.max(1),
        }
    }

    /// Remembers the invoice of `hash`, expiring at `expires_at` (Unix seconds), forgetting the
    /// oldest when full.
    pub(crate) fn remember(&self, hash: PaymentHash, expires_at: u64) {
        let mut paged = lock(&self.inner);
        let entry = PagedInvoice {
            expires_at,
            asked_at: None,
        };
        if paged.by_hash.insert(hash, entry).is_some() {
            return;
        }
        paged.order.push_back(hash);
        if paged.order.len() > self.capacity {
            if let Some(oldest) = paged.order.pop_front() {
                paged.by_hash.remove(&oldest);
            }
        }
    }

    /// The invoice of `hash` if it was offered on a page here, and whether its receiver may be
    /// asked about it now (not within `interval` of the last time, which is then `now`).
    pub(crate) fn claim_ask(
        &self,
        hash: &PaymentHash,
        now: Duration,
        interval: Duration,
    ) -> Option<(PagedInvoice, bool)> {
        let mut paged = lock(&self.inner);
        let entry = paged.by_hash.get_mut(hash)?;
        let may_ask = entry
            .asked_at
            .is_none_or(|asked| now.saturating_sub(asked) >= interval);
        if may_ask {
            entry.asked_at = Some(now);
        }
        Some((*entry, may_ask))
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
    fn paged_invoices_are_asked_about_once_an_interval_and_bounded() {
        let paged = PagedInvoices::new(2);
        let second = Duration::from_secs(1);
        assert_eq!(paged.claim_ask(&[1; 32], Duration::ZERO, second), None);
        paged.remember([1; 32], 100);
        let (entry, may_ask) = paged.claim_ask(&[1; 32], Duration::ZERO, second).unwrap();
        assert_eq!((entry.expires_at, may_ask), (100, true));
        let half = Duration::from_millis(500);
        assert!(!paged.claim_ask(&[1; 32], half, second).unwrap().1);
        assert!(paged.claim_ask(&[1; 32], second, second).unwrap().1);
        paged.remember([2; 32], 200);
        paged.remember([3; 32], 300);
        assert_eq!(paged.claim_ask(&[1; 32], second * 9, second), None);
        assert!(paged.claim_ask(&[3; 32], second * 9, second).is_some());
    }
}
