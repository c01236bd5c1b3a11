//! A mock facilitator and a test wallet, for this crate's tests and for yours (feature `mock`).
//!
//! [`MockFacilitator`] is a real axum HTTP server on `127.0.0.1:0` that implements the four
//! calls of PROTOCOL.md. It mints real, signed BOLT11 invoices with its own node key (`payTo` is
//! that key), verifies client authorizations as PROTOCOL.md describes, settles each invoice at
//! most once, keeps per-client balances, records every call, and injects [`Fault`]s on demand.
//! [`TestWallet`] is the matching client key.
//!
//! ```
//! use x402_lightning::mock::{MockFacilitator, TestWallet};
//! use x402_lightning::{Facilitator, FacilitatorCall, HttpFacilitator, Network};
//! use x402_lightning::{RequirementsRequest, VerifyRequest};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mock = MockFacilitator::start().await?;
//! let wallet = TestWallet::random();
//! mock.fund(wallet.public_key(), 1_000_000);
//!
//! let facilitator = HttpFacilitator::new(&mock.url())?;
//! let ask = RequirementsRequest::new(Network::Regtest, 10_000, "http://localhost/weather");
//! let requirements = facilitator.requirements(&ask).await?;
//! let request = VerifyRequest::new(wallet.authorize(&requirements), requirements);
//! assert!(facilitator.verify(&request).await?.is_valid);
//! assert!(facilitator.settle(&request).await?.success);
//! assert_eq!(mock.balance(&wallet.public_key()), 990_000);
//! assert_eq!(mock.calls_to(FacilitatorCall::Settle).len(), 1);
//! # Ok(())
//! # }
//! ```

mod fault;
mod keys;
mod ledger;
mod node;
mod server;
mod wallet;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use bitcoin::hashes::Hash as _;
use bitcoin::secp256k1::PublicKey;
use http::{HeaderMap, StatusCode};
use lightning_invoice::Bolt11Invoice;
use tokio::task::JoinHandle;

pub use self::fault::{Fault, InvoiceFault};
pub use self::keys::InvalidSecretKey;
pub use self::node::{InvoiceSpec, MintError, MintedInvoice, MockNode};
pub use self::wallet::{DEMO_WALLET_SECRET, Forgery, TestWallet};

use self::ledger::Rules;
use self::server::{Shared, lock};
use crate::clock::{self, Clock, SharedClock};
use crate::facilitator::FacilitatorCall;
use crate::network::Network;

/// How long the mock's invoices can be paid, unless configured: 10 minutes.
pub const DEFAULT_INVOICE_EXPIRY: Duration = Duration::from_secs(600);

/// One call the mock answered, for assertions.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    /// Which call.
    pub call: FacilitatorCall,
    /// The request body as received.
    pub request_body: Bytes,
    /// The request headers.
    pub headers: HeaderMap,
    /// The status answered.
    pub status: StatusCode,
    /// The response body as sent.
    pub response_body: Bytes,
    /// The fault injected into this call, if any.
    pub fault: Option<Fault>,
    /// How long the mock took to answer, injected delays included.
    pub service_time: Duration,
}

impl RecordedCall {
    /// The request body as JSON (`Null` when empty or not JSON).
    pub fn request(&self) -> serde_json::Value {
        serde_json::from_slice(&self.request_body).unwrap_or_default()
    }

    /// The response body as JSON (`Null` for an injected garbage body).
    pub fn response(&self) -> serde_json::Value {
        serde_json::from_slice(&self.response_body).unwrap_or_default()
    }
}

/// Configures a [`MockFacilitator`]; see [`MockFacilitator::builder`].
#[derive(Debug)]
#[must_use]
pub struct MockFacilitatorBuilder {
    network: Network,
    node: Option<MockNode>,
    invoice_expiry: Duration,
    bind: SocketAddr,
    bearer_token: Option<String>,
    record_calls: bool,
    clock: SharedClock,
}

impl MockFacilitatorBuilder {
    /// The network to serve (default `lightning-regtest`).
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// The node that mints invoices (default: a random key).
    pub fn node(mut self, node: MockNode) -> Self {
        self.node = Some(node);
        self
    }

    /// How long minted invoices can be paid (default 10 minutes).
    pub fn invoice_expiry(mut self, expiry: Duration) -> Self {
        self.invoice_expiry = expiry;
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Answer 401 to calls without `Authorization: Bearer <token>`.
    pub fn require_bearer_token(mut self, token: &str) -> Self {
        self.bearer_token = Some(token.to_owned());
        self
    }

    /// Whether to record calls (default yes). Turn it off for long load runs, where the record
    /// would grow without bound; [`MockFacilitator::calls`], [`MockFacilitator::calls_to`] and
    /// [`MockFacilitator::call_count`] then stay empty.
    pub fn record_calls(mut self, record: bool) -> Self {
        self.record_calls = record;
        self
    }

    /// The clock the mock mints and checks invoices by (default: the system's). Share a
    /// [`ManualClock`](crate::clock::ManualClock) with the layer to test expiry without
    /// sleeping.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Binds the listener and starts serving on the current tokio runtime.
    pub async fn start(self) -> io::Result<MockFacilitator> {
        let node = self.node.unwrap_or_else(MockNode::random);
        let shared = Arc::new(Shared {
            rules: Rules {
                network: self.network,
                node_id: node.node_id(),
            },
            node,
            invoice_expiry: self.invoice_expiry,
            clock: self.clock,
            bearer_token: self.bearer_token,
            record_calls: self.record_calls,
            ledger: Mutex::default(),
            faults: Mutex::default(),
            calls: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let app = server::router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "mock facilitator stopped");
            }
        });
        tracing::info!(%addr, network = %shared.rules.network, "mock facilitator listening");
        Ok(MockFacilitator { addr, shared, task })
    }
}

/// A mock facilitator serving PROTOCOL.md over real HTTP. Stops when dropped.
#[derive(Debug)]
pub struct MockFacilitator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for MockFacilitator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockFacilitator {
    /// Starts a regtest mock on `127.0.0.1:0` with a random node key.
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// Starts configuring a mock.
    pub fn builder() -> MockFacilitatorBuilder {
        MockFacilitatorBuilder {
            network: Network::Regtest,
            node: None,
            invoice_expiry: DEFAULT_INVOICE_EXPIRY,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            bearer_token: None,
            record_calls: true,
            clock: clock::system(),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The network it serves.
    pub fn network(&self) -> Network {
        self.shared.rules.network
    }

    /// Its node, which mints (and could forge) invoices.
    pub fn node(&self) -> &MockNode {
        &self.shared.node
    }

    /// Its node key as 66 hex characters: the `payTo` of its requirements.
    pub fn pay_to(&self) -> String {
        self.shared.node.pay_to()
    }

    /// Adds `msat` to a client's balance.
    pub fn fund(&self, client: PublicKey, msat: u64) {
        lock(&self.shared.ledger).fund(client, msat);
    }

    /// A client's balance in msat.
    pub fn balance(&self, client: &PublicKey) -> u64 {
        lock(&self.shared.ledger).balance(client)
    }

    /// Whether this invoice was minted here and has been paid.
    pub fn is_paid(&self, invoice: &str) -> bool {
        invoice.parse::<Bolt11Invoice>().is_ok_and(|invoice| {
            lock(&self.shared.ledger).is_paid(&invoice.payment_hash().to_byte_array())
        })
    }

    /// Every call answered so far, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.shared.calls).clone()
    }

    /// The calls of one kind answered so far, oldest first.
    pub fn calls_to(&self, call: FacilitatorCall) -> Vec<RecordedCall> {
        lock(&self.shared.calls)
            .iter()
            .filter(|recorded| recorded.call == call)
            .cloned()
            .collect()
    }

    /// How many calls of one kind were answered so far.
    pub fn call_count(&self, call: FacilitatorCall) -> usize {
        lock(&self.shared.calls)
            .iter()
            .filter(|recorded| recorded.call == call)
            .count()
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        lock(&self.shared.calls).clear();
    }

    /// Injects `fault` into the next `call` only (queued after earlier one-shot faults).
    ///
    /// A fault that does not apply to `call` (see [`Fault::applies_to`]) makes that call answer
    /// 500 with a message saying so.
    pub fn fail_next(&self, call: FacilitatorCall, fault: Fault) {
        lock(&self.shared.faults)[call.index()].push_next(fault);
    }

    /// Injects `fault` into every `call` from now on, until [`Self::heal`].
    pub fn fail_always(&self, call: FacilitatorCall, fault: Fault) {
        lock(&self.shared.faults)[call.index()].set_always(Some(fault));
    }

    /// Removes every fault waiting for `call`.
    pub fn heal(&self, call: FacilitatorCall) {
        lock(&self.shared.faults)[call.index()].clear();
    }

    /// Removes every fault of every call.
    pub fn heal_all(&self) {
        for plan in lock(&self.shared.faults).iter_mut() {
            plan.clear();
        }
    }
}
