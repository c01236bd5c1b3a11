//! Per-invoice bookkeeping of the layer: which invoices are being processed right now, and which
//! were recently settled here.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.inner).order.len()
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
}
