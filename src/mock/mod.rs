//! A mock facilitator and a test wallet, for this crate's tests and for yours (feature `mock`).
//!
//! [`MockFacilitator`] answers the four calls of the [wire contract](crate::protocol) and this
//! project's `GET /invoices/{paymentHash}` in process, as a [`Facilitator`] for
//! `tower::ServiceExt::oneshot` tests ([`MockFacilitator::new`]), or as a real axum HTTP server
//! on `127.0.0.1:0` ([`MockFacilitator::start`]), with one state either way. It mints real, signed BOLT11
//! invoices with its own node key (`payTo` is that key), verifies client authorizations as the
//! wire contract describes, settles each invoice at most once, keeps per-client balances,
//! records every call, and injects [`Fault`]s on demand. [`TestWallet`] is the matching client
//! key.
//!
//! For the `lnbtc` flow it also plays the Lightning network: `/requirements` with a
//! `descriptionHash` mints an invoice bound to that request hash, [`MockFacilitator::pay_invoice`]
//! (or `POST /pay` over HTTP, or [`TestWallet::pay_invoice`]) pays an invoice it minted and
//! returns the preimage, and `/settle` of x402 version 2 checks the proof with
//! [`lnbtc::settle`](crate::lnbtc::settle) and records its payment hash once. It is also a
//! [`Receiver`].
//!
//! For the browser paywall, `GET /invoices/{paymentHash}` ([`Facilitator::invoice_status`],
//! [`Receiver::invoice_status`]) reports where an invoice it minted stands: `open` until paid,
//! `paid` with its preimage once paid over its Lightning network, `cancelled` once the seed
//! flow's `/settle` paid it inside the books (its preimage never left the mock); 404 for an
//! invoice it did not mint, 400 for a path that is not 64 lowercase hex.
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
//! assert_eq!(mock.balance(wallet.public_key()), 990_000);
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

use std::borrow::Borrow;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use bitcoin::hashes::Hash as _;
use bitcoin::hex::DisplayHex as _;
use bitcoin::secp256k1::PublicKey;
use http::{HeaderMap, StatusCode};
use lightning_invoice::Bolt11Invoice;
use tokio::task::JoinHandle;

use crate::lnbtc::types as lnbtc;
use crate::receiver::{
    FacilitatorReceiver, InvoiceRequest, InvoiceStatus, Receiver, ReceiverError,
};

pub use self::fault::{Fault, InvoiceFault};
pub use self::keys::InvalidSecretKey;
pub use self::ledger::{LightningPayment, PayError};
pub use self::node::{InvoiceSpec, MintError, MintedInvoice, MockNode};
pub use self::wallet::{DEMO_WALLET_SECRET, Forgery, TestWallet};

use self::ledger::Rules;
use self::server::{Served, Shared, lock};
use crate::clock::{self, Clock, SharedClock};
use crate::facilitator::{Facilitator, FacilitatorCall, FacilitatorError, decode_reply};
use crate::layer::Flows;
use crate::network::Network;
use crate::types::{
    PaymentRequirements, RequirementsRequest, SettleRequest, SettleResponse, SupportedResponse,
    VerifyRequest, VerifyResponse,
};

/// How long the mock's invoices can be paid, unless configured: 10 minutes.
pub const DEFAULT_INVOICE_EXPIRY: Duration = Duration::from_secs(600);

/// One call the mock answered, for assertions.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    /// Which call.
    pub call: FacilitatorCall,
    /// The path asked, e.g. `/verify`, or `/invoices/<paymentHash>` with the hash as received
    /// (an in-process call's is the path an HTTP client would ask).
    pub path: String,
    /// The request body as received (empty for a `GET`).
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
    served: Served,
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

    /// Answer 401 to HTTP calls without `Authorization: Bearer <token>` (in-process calls are
    /// the test's own and need none).
    pub fn require_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Whether to record calls (default yes). Turn it off for long load runs, where the record
    /// would grow without bound; [`MockFacilitator::calls`], [`MockFacilitator::calls_to`] and
    /// [`MockFacilitator::call_count`] then stay empty.
    pub fn record_calls(mut self, record: bool) -> Self {
        self.record_calls = record;
        self
    }

    /// The flows served (default both); see [`MockFacilitator::serve_flows`].
    pub fn flows(mut self, flows: Flows) -> Self {
        self.served.flows = flows;
        self
    }

    /// Whether `/supported` announces the node as `payTo` (default yes); see
    /// [`MockFacilitator::announce_pay_to`].
    pub fn announce_pay_to(mut self, announce: bool) -> Self {
        self.served.announce_pay_to = announce;
        self
    }

    /// The clock the mock mints and checks invoices by (default: the system's). Share a
    /// [`ManualClock`](crate::clock::ManualClock) with the layer to test expiry without
    /// sleeping.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds an in-process mock: it implements [`Facilitator`] by answering each call in
    /// process (the same rules, faults and call record as over HTTP, with the request and reply
    /// still going through JSON), without a listener or a tokio runtime to build it. Two
    /// differences: in-process calls need no bearer token, and have no timeout (a
    /// [`Fault::Delay`] delays them by its full length, where an `HttpFacilitator` would time
    /// out). Its [`url`](MockFacilitator::url) panics; use [`start`](Self::start) for an HTTP
    /// mock.
    pub fn build(self) -> MockFacilitator {
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
            served: Mutex::new(self.served),
            ledger: Mutex::default(),
            faults: Mutex::default(),
            calls: Mutex::default(),
        });
        MockFacilitator {
            shared,
            server: None,
        }
    }

    /// Binds the listener and starts serving on the current tokio runtime. The mock also
    /// answers in process, as a [`Facilitator`], with the same state.
    pub async fn start(self) -> io::Result<MockFacilitator> {
        let bind = self.bind;
        let mut mock = self.build();
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let app = server::router(Arc::clone(&mock.shared));
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "mock facilitator stopped");
            }
        });
        tracing::info!(%addr, network = %mock.shared.rules.network, "mock facilitator listening");
        mock.server = Some(Arc::new(Server { addr, task }));
        Ok(mock)
    }
}

/// A mock facilitator: a real HTTP server speaking the [wire contract](crate::protocol)
/// ([`start`](Self::start)), and a [`Facilitator`] answering in process ([`new`](Self::new), or
/// any mock): the same rules, state and call record either way.
///
/// Clones share everything; the server stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct MockFacilitator {
    shared: Arc<Shared>,
    server: Option<Arc<Server>>,
}

/// The HTTP side of a started mock.
#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Default for MockFacilitator {
    fn default() -> Self {
        Self::new()
    }
}

impl MockFacilitator {
    /// Starts a regtest mock on `127.0.0.1:0` with a random node key.
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// An in-process regtest mock with a random node key, for tests that drive an app with
    /// `tower::ServiceExt::oneshot` and no TCP (see [`MockFacilitatorBuilder::build`]):
    ///
    /// ```
    /// use x402_lightning::mock::MockFacilitator;
    /// use x402_lightning::{Network, Price, X402Layer};
    ///
    /// # fn main() -> Result<(), x402_lightning::layer::ConfigError> {
    /// let mock = MockFacilitator::new();
    /// let payments = X402Layer::builder(mock.clone(), mock.network())
    ///     .pay_to(mock.pay_to())
    ///     .public_base_url("https://api.example.com")
    ///     .route("GET /weather", Price::sats(10))
    ///     .build()?;
    /// # let _ = payments;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
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
            served: Served {
                flows: Flows::BOTH,
                announce_pay_to: true,
            },
        }
    }

    /// The address it listens on, `None` for an in-process mock.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|server| server.addr)
    }

    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    ///
    /// # Panics
    ///
    /// For an in-process mock ([`new`](Self::new), [`MockFacilitatorBuilder::build`]), which
    /// has no URL: start it with [`start`](Self::start) to serve HTTP.
    pub fn url(&self) -> String {
        match self.addr() {
            Some(addr) => format!("http://{addr}"),
            None => panic!(
                "this MockFacilitator is in-process (MockFacilitator::new or builder().build()) \
                 and has no URL; use MockFacilitator::start() for an HTTP mock"
            ),
        }
    }

    /// The network it serves.
    pub fn network(&self) -> Network {
        self.shared.rules.network
    }

    /// Its node, which mints (and could forge) invoices.
    pub fn node(&self) -> &MockNode {
        &self.shared.node
    }

    /// Its node key: the `payTo` of its requirements, as
    /// [`X402LayerBuilder::pay_to`](crate::layer::X402LayerBuilder::pay_to) takes it; its
    /// `to_string()` is the 66 hex characters of the wire.
    pub fn pay_to(&self) -> PublicKey {
        self.shared.node.pay_to()
    }

    /// Adds `msat` to a client's balance (the key by value or by reference).
    pub fn fund(&self, client: impl Borrow<PublicKey>, msat: u64) {
        lock(&self.shared.ledger).fund(*client.borrow(), msat);
    }

    /// A client's balance in msat (the key by value or by reference).
    pub fn balance(&self, client: impl Borrow<PublicKey>) -> u64 {
        lock(&self.shared.ledger).balance(client.borrow())
    }

    /// Whether this invoice was minted here and has been paid.
    pub fn is_paid(&self, invoice: &str) -> bool {
        invoice.parse::<Bolt11Invoice>().is_ok_and(|invoice| {
            lock(&self.shared.ledger).is_paid(&invoice.payment_hash().to_byte_array())
        })
    }

    /// Pays `invoice` over the mock's Lightning network, as a payer's wallet would, and returns
    /// its preimage: the proof of payment of the `lnbtc` flow. Only an invoice minted here,
    /// unexpired (by the mock's clock) and not yet paid, by this or by the seed flow's
    /// `/settle`. Over HTTP: `POST /pay {"invoice": "…"}`.
    pub fn pay_invoice(&self, invoice: &str) -> Result<LightningPayment, PayError> {
        self.shared.pay_invoice(invoice)
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

    /// Serves `flows` from now on (both by default): `/supported` lists only their kinds, and
    /// `/verify` or `/settle` of another flow answers 400, as a facilitator that does not
    /// serve it would. `/requirements` mints for both.
    pub fn serve_flows(&self, flows: Flows) {
        lock(&self.shared.served).flows = flows;
    }

    /// Whether `/supported` announces the node as `payTo` from now on (it does by default).
    pub fn announce_pay_to(&self, announce: bool) {
        lock(&self.shared.served).announce_pay_to = announce;
    }
}

impl MockFacilitator {
    /// One call to its own path answered in process; see [`Self::call_in_process_at`].
    async fn call_in_process<T: serde::de::DeserializeOwned>(
        &self,
        call: FacilitatorCall,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, FacilitatorError> {
        self.call_in_process_at(call, call.path().to_owned(), body)
            .await
    }

    /// One call to `path` answered in process: the request goes through JSON, the reply is
    /// read as [`HttpFacilitator`](crate::HttpFacilitator) reads an HTTP reply. In-process
    /// calls need no bearer token.
    async fn call_in_process_at<T: serde::de::DeserializeOwned>(
        &self,
        call: FacilitatorCall,
        path: String,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, FacilitatorError> {
        let body = match body {
            // Plain data types: serializing cannot fail.
            Some(body) => Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
            None => Bytes::new(),
        };
        let (status, reply) = self
            .shared
            .exchange(call, true, path, HeaderMap::new(), body)
            .await;
        decode_reply(call, status, &reply)
    }
}

/// In process: the same answers as the mock's HTTP routes, without TCP.
impl Facilitator for MockFacilitator {
    async fn requirements(
        &self,
        request: &RequirementsRequest,
    ) -> Result<PaymentRequirements, FacilitatorError> {
        self.call_in_process(FacilitatorCall::Requirements, Some(request))
            .await
    }

    async fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, FacilitatorError> {
        self.call_in_process(FacilitatorCall::Verify, Some(request))
            .await
    }

    async fn settle(&self, request: &SettleRequest) -> Result<SettleResponse, FacilitatorError> {
        self.call_in_process(FacilitatorCall::Settle, Some(request))
            .await
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        self.call_in_process(FacilitatorCall::Supported, None::<&()>)
            .await
    }

    async fn settle_lnbtc(
        &self,
        request: &lnbtc::SettleRequest,
    ) -> Result<lnbtc::SettleResponse, FacilitatorError> {
        self.call_in_process(FacilitatorCall::Settle, Some(request))
            .await
    }

    async fn invoice_status(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<InvoiceStatus, FacilitatorError> {
        let call = FacilitatorCall::Invoice;
        let path = format!("{}/{}", call.path(), payment_hash.to_lower_hex_string());
        self.call_in_process_at(call, path, None::<&()>).await
    }
}

/// The mock as a [`Receiver`]: its `/requirements` and `/invoices/{paymentHash}` (in process,
/// with their faults and call record), whose node keeps each invoice's preimage for
/// [`MockFacilitator::pay_invoice`].
impl Receiver for MockFacilitator {
    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<String, ReceiverError> {
        FacilitatorReceiver(self.clone())
            .create_invoice(request)
            .await
    }

    async fn invoice_status(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<Option<InvoiceStatus>, ReceiverError> {
        crate::receiver::facilitator_invoice_status(self, payment_hash).await
    }
}
