//! The invoice-issuance limiter: every 402 costs a mint at the facilitator, so an unpaid flood
//! must not mint without bound (the upstream Lightning scheme: servers SHOULD limit issuance).
//!
//! A limit holds per client (keyed by the peer's IP address by default, or by a function of
//! the request head) and for the whole layer. A request over either limit gets a 429 with
//! `Retry-After` and nothing is minted. Rates use the GCRA of the `governor` crate.

use std::fmt;
use std::hash::{BuildHasher as _, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};
use http::request::Parts;

use crate::clock::SharedClock;

/// A rate of invoice issuance: `burst` invoices at once, then one more every `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuanceRate {
    burst: u32,
    period: Duration,
}

impl IssuanceRate {
    /// `n` invoices per second, `n` at once.
    pub const fn per_second(n: u32) -> Self {
        Self::per(n, Duration::from_secs(1))
    }

    /// `n` invoices per minute, `n` at once.
    pub const fn per_minute(n: u32) -> Self {
        Self::per(n, Duration::from_secs(60))
    }

    const fn per(n: u32, window: Duration) -> Self {
        let period = match n {
            0 => Duration::ZERO,
            n => Duration::from_nanos((window.as_nanos() / n as u128) as u64),
        };
        Self { burst: n, period }
    }

    /// Allows `burst` invoices at once (default: the count per period).
    #[must_use]
    pub const fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.burst)?;
        Some(Quota::with_period(self.period)?.allow_burst(burst))
    }
}

/// A function naming the client of a request for the per-client limit; the requests it names
/// `None` share one client's allowance.
pub type ClientKeyFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// How many invoices the layer may mint, per client and in all.
///
/// ```
/// use x402_lightning::layer::{IssuanceLimit, IssuanceRate};
///
/// let limit = IssuanceLimit::new()
///     .per_client(IssuanceRate::per_minute(60).burst(20))
///     .global(IssuanceRate::per_second(100));
/// # let _ = limit;
/// ```
///
/// The client is the peer's IP address by default (an IPv6 address counts by its /64 prefix),
/// read from axum's `ConnectInfo<SocketAddr>` (serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()`) or a `SocketAddr` request
/// extension. Behind a trusted proxy, name the client yourself with
/// [`client_key`](Self::client_key) (e.g. from `X-Forwarded-For`, which only a proxy you
/// run can vouch for). Requests whose client cannot be named share one client's allowance
/// (logged once), so a server started without connect info is limited, not open. A global limit
/// is shared by everyone: a client with many addresses can use it up, so set it well above the
/// per-client one.
#[derive(Clone, Default)]
#[must_use]
pub struct IssuanceLimit {
    per_client: Option<IssuanceRate>,
    global: Option<IssuanceRate>,
    key: Option<Arc<ClientKeyFn>>,
}

impl fmt::Debug for IssuanceLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuanceLimit")
            .field("per_client", &self.per_client)
            .field("global", &self.global)
            .field("custom_key", &self.key.is_some())
            .finish()
    }
}

impl IssuanceLimit {
    /// No limit yet: add [`per_client`](Self::per_client) and/or [`global`](Self::global).
    pub fn new() -> Self {
        Self::default()
    }

    /// The limit for each client.
    pub fn per_client(mut self, rate: IssuanceRate) -> Self {
        self.per_client = Some(rate);
        self
    }

    /// The limit for all clients together.
    pub fn global(mut self, rate: IssuanceRate) -> Self {
        self.global = Some(rate);
        self
    }

    /// Names the client of a request instead of its peer IP address.
    pub fn client_key(
        mut self,
        key: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    /// The limiter, on `clock`; `Err` names a rate that cannot be used.
    pub(crate) fn build(self, clock: SharedClock) -> Result<Limiter, &'static str> {
        let clock = LimiterClock(clock);
        let keyed = match self.per_client {
            None => None,
            Some(rate) => {
                let quota = rate.quota().ok_or("the per-client issuance rate")?;
                Some(Clients {
                    table: RwLock::new(RateLimiter::hashmap_with_clock(quota, clock.clone())),
                    quota,
                    hasher: RandomState::new(),
                    max_clients: MAX_CLIENTS,
                })
            }
        };
        let global = match self.global {
            None => None,
            Some(rate) => {
                let quota = rate.quota().ok_or("the global issuance rate")?;
                Some(RateLimiter::direct_with_clock(quota, clock.clone()))
            }
        };
        Ok(Limiter {
            keyed,
            global,
            key: self.key,
            clock,
            checks: AtomicU64::new(0),
            warned_keyless: AtomicBool::new(false),
        })
    }
}

/// The layer's clock, as governor reads it: monotonic time.
#[derive(Clone, Debug)]
struct LimiterClock(SharedClock);

impl governor::clock::Clock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.monotonic()
    }
}

type KeyedLimiter =
    RateLimiter<u64, HashMapStateStore<u64>, LimiterClock, NoOpMiddleware<Duration>>;
type GlobalLimiter = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Duration>>;

/// The key shared by requests whose client cannot be named: together they get one client's
/// allowance, so a server started without connect info is limited rather than open. It cannot
/// clash with an IP address, and a custom key function should not return it.
const UNNAMED_CLIENT: &str = "unnamed client";

/// How many checks pass between two sweeps of clients whose allowance is full again, which
/// keeps the per-client table as small as the set of recently active clients.
const SWEEP_EVERY: u64 = 1024;

/// How many clients the per-client table holds at most after a sweep; beyond, it starts over
/// (every client gets a fresh allowance; the global limit still bounds what is minted).
const MAX_CLIENTS: usize = 100_000;

/// The per-client limits: one GCRA state per client, keyed by a keyed hash of the client's name
/// so that an entry has a fixed size whatever the name.
struct Clients {
    table: RwLock<KeyedLimiter>,
    quota: Quota,
    hasher: RandomState,
    max_clients: usize,
}

impl Clients {
    fn check(
        &self,
        client: &str,
        wait: impl Fn(NotUntil<Duration>) -> Duration,
    ) -> Result<(), Duration> {
        let key = self.hasher.hash_one(client);
        read(&self.table).check_key(&key).map_err(wait)
    }

    /// Drops the clients whose allowance is full again; starts over when too many remain.
    fn sweep(&self, clock: &LimiterClock) {
        let over = {
            let table = read(&self.table);
            table.retain_recent();
            table.len() > self.max_clients
        };
        if over {
            tracing::warn!(
                clients = self.max_clients,
                "invoice issuance: too many clients at once; per-client allowances start over"
            );
            *write(&self.table) = RateLimiter::hashmap_with_clock(self.quota, clock.clone());
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        read(&self.table).len()
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // The table stays consistent even if a holder panicked: each update is one call.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// The built limiter of a layer.
pub(crate) struct Limiter {
    keyed: Option<Clients>,
    global: Option<GlobalLimiter>,
    key: Option<Arc<ClientKeyFn>>,
    clock: LimiterClock,
    checks: AtomicU64,
    warned_keyless: AtomicBool,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("per_client", &self.keyed.is_some())
            .field("global", &self.global.is_some())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// Counts one invoice for the client of `head`: `Err(wait)` when a limit is reached, with
    /// the time until one more is allowed. The client's own limit is checked first, so a client
    /// over it never uses up the global allowance; the other way round, a request the global
    /// limit refuses has used one of its client's (a GCRA cell cannot be handed back).
    pub(crate) fn check(&self, head: &Parts) -> Result<(), Duration> {
        let wait = |not_until: NotUntil<Duration>| not_until.wait_time_from(self.clock.now());
        if let Some(keyed) = &self.keyed {
            if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                keyed.sweep(&self.clock);
            }
            let client = self.client_of(head).unwrap_or_else(|| {
                if !self.warned_keyless.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "invoice issuance: a request names no client (no peer address); such \
                         requests share one client's limit: serve with connect info or set a \
                         client key"
                    );
                }
                UNNAMED_CLIENT.to_owned()
            });
            keyed.check(&client, wait)?;
        }
        if let Some(global) = &self.global {
            global.check().map_err(wait)?;
        }
        Ok(())
    }

    fn client_of(&self, head: &Parts) -> Option<String> {
        match &self.key {
            Some(key) => key(head),
            None => peer_ip(head).map(|ip| ip.to_string()),
        }
    }

    /// How many clients the per-client table holds.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.keyed.as_ref().map_or(0, Clients::len)
    }
}

/// The peer's IP address of a request, an IPv6 address cut to its /64 prefix (one host
/// usually holds a whole /64).
fn peer_ip(head: &Parts) -> Option<IpAddr> {
    let peer = connect_info(head).or_else(|| head.extensions.get::<SocketAddr>().copied())?;
    Some(match peer.ip().to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    })
}

#[cfg(feature = "axum")]
fn connect_info(head: &Parts) -> Option<SocketAddr> {
    head.extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

#[cfg(not(feature = "axum"))]
fn connect_info(_head: &Parts) -> Option<SocketAddr> {
    None
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::clock::ManualClock;

    fn head_from(peer: &str) -> Parts {
        let mut head = http::Request::new(()).into_parts().0;
        head.extensions.insert(peer.parse::<SocketAddr>().unwrap());
        head
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_the_period() {
        let clock = ManualClock::starting_now();
        let limiter = IssuanceLimit::new()
            .per_client(IssuanceRate::per_minute(6).burst(2))
            .build(Arc::new(clock.clone()))
            .unwrap();
        let (alice, bob) = (head_from("10.0.0.1:1000"), head_from("10.0.0.2:1000"));
        assert_eq!(limiter.check(&alice), Ok(()));
        assert_eq!(limiter.check(&alice), Ok(()));
        assert_eq!(limiter.check(&alice), Err(Duration::from_secs(10)));
        assert_eq!(limiter.check(&bob), Ok(()), "another client has its own");
        clock.advance(Duration::from_secs(4));
        assert_eq!(limiter.check(&alice), Err(Duration::from_secs(6)));
        clock.advance(Duration::from_secs(6));
        assert_eq!(limiter.check(&alice), Ok(()));
        assert_eq!(limiter.check(&alice), Err(Duration::from_secs(10)));
    }

    #[test]
    fn requests_that_name_no_client_share_one_clients_allowance() {
        let clock = ManualClock::starting_now();
        let limiter = IssuanceLimit::new()
            .per_client(IssuanceRate::per_minute(2))
            .build(Arc::new(clock))
            .unwrap();
        let keyless = http::Request::new(()).into_parts().0;
        assert!(limiter.check(&keyless).is_ok());
        assert!(limiter.check(&keyless).is_ok());
        assert_eq!(limiter.check(&keyless), Err(Duration::from_secs(30)));
        assert!(limiter.check(&head_from("10.0.0.1:1")).is_ok());
    }

    #[test]
    fn the_global_limit_holds_across_clients_and_keyless_requests() {
        let clock = ManualClock::starting_now();
        let limiter = IssuanceLimit::new()
            .global(IssuanceRate::per_second(2))
            .build(Arc::new(clock.clone()))
            .unwrap();
        let keyless = http::Request::new(()).into_parts().0;
        assert!(limiter.check(&head_from("10.0.0.1:1")).is_ok());
        assert!(limiter.check(&keyless).is_ok());
        assert!(limiter.check(&head_from("10.0.0.3:1")).is_err());
        clock.advance(Duration::from_millis(500));
        assert!(limiter.check(&keyless).is_ok());
    }

    #[test]
    fn ipv6_clients_count_by_their_64_prefix_and_v4_mapped_as_v4() {
        let a = head_from("[2001:db8:1:2:aaaa::1]:1");
        let b = head_from("[2001:db8:1:2:bbbb::2]:1");
        let prefix: Ipv6Addr = "2001:db8:1:2::".parse().unwrap();
        assert_eq!(peer_ip(&a), Some(IpAddr::V6(prefix)));
        assert_eq!(peer_ip(&a), peer_ip(&b));
        let mapped = head_from("[::ffff:10.0.0.1]:1");
        assert_eq!(peer_ip(&mapped), Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_custom_key_names_clients_and_idle_clients_are_swept() {
        let clock = ManualClock::starting_now();
        let limiter = IssuanceLimit::new()
            .per_client(IssuanceRate::per_second(1))
            .client_key(|head| {
                let key = head.headers.get("x-api-key")?.to_str().ok()?;
                Some(key.to_owned())
            })
            .build(Arc::new(clock.clone()))
            .unwrap();
        let with_key = |key: &str| {
            let mut head = http::Request::new(()).into_parts().0;
            head.headers.insert("x-api-key", key.parse().unwrap());
            head
        };
        assert!(limiter.check(&with_key("a")).is_ok());
        assert!(limiter.check(&with_key("a")).is_err());
        for n in 0..SWEEP_EVERY {
            clock.advance(Duration::from_secs(2));
            assert!(limiter.check(&with_key(&n.to_string())).is_ok());
        }
        // The last sweep dropped every client whose allowance was full again; only the three
        // seen since remain, not all 1,025.
        assert_eq!(limiter.clients(), 3);
    }

    #[test]
    fn the_client_table_stays_bounded_however_many_clients_come() {
        let clock = ManualClock::starting_now();
        let mut limiter = IssuanceLimit::new()
            .per_client(IssuanceRate::per_minute(1))
            .client_key(|head| Some(head.uri.path().to_owned()))
            .build(Arc::new(clock))
            .unwrap();
        if let Some(clients) = &mut limiter.keyed {
            clients.max_clients = 100;
        }
        let long = "x".repeat(1_000);
        let mut most = 0;
        for n in 0..5_000 {
            let head = http::Request::get(format!("/{long}{n}"))
                .body(())
                .unwrap()
                .into_parts()
                .0;
            assert!(
                limiter.check(&head).is_ok(),
                "a new client has its allowance"
            );
            most = most.max(limiter.clients());
        }
        // Never more than the bound plus the clients seen between two sweeps.
        assert!(most <= 100 + SWEEP_EVERY as usize, "{most} clients kept");
    }

    #[test]
    fn a_rate_that_allows_nothing_is_refused() {
        let clock: SharedClock = Arc::new(ManualClock::starting_now());
        for limit in [
            IssuanceLimit::new().per_client(IssuanceRate::per_second(0)),
            IssuanceLimit::new().global(IssuanceRate::per_minute(5).burst(0)),
        ] {
            assert!(limit.build(Arc::clone(&clock)).is_err());
        }
    }
}
