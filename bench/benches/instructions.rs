//! Instructions per request (callgrind, through gungraun): one request through an axum `Router`
//! with and without `X402Layer`, counted by valgrind, so the figures do not move with the
//! machine's load the way requests/s do.
//!
//! Each case is one request (`tower::ServiceExt::oneshot` on a clone of the `Router`, then the
//! response body polled to its end and dropped, as hyper does when it writes a response):
//!
//! - `free_bare`: bare axum, `GET /health`;
//! - `free_layered`: the same `Router` with `.layer(X402Layer)` (the demo's prices), `GET /health`;
//! - `priced_bare`: bare axum, `GET /weather` (its handler answers 200);
//! - `priced_layered`: the layered `Router`, `GET /weather` without payment, answered 402;
//! - `free_noop_layer` (for reference): the `Router` with `.layer()` of a tower layer that does
//!   nothing (`MapResponseLayer` with the identity), `GET /health`: what any `Router::layer`
//!   costs a request before the layer does anything, since axum wraps every route in another
//!   boxed `Route`;
//! - `free_outer_layer` (for reference): `X402Layer` around the whole bare `Router`
//!   (`Layer::layer(&x402, router)`, served as a tower service), `GET /health`: the layer's own
//!   cost on a free route, without axum's per-route wrapping.
//!
//! The 402 asks an in-process facilitator ([`InProcessFacilitator`]) for requirements: it hands
//! out invoices minted in setup (a different one per call, in turn), so the count is the
//! layer's own work — the route match, building the 402, checking the facilitator's invoice
//! (BOLT11 parse, signature, payee) — with no HTTP round trip. The invoices are minted like
//! `MockNode::mint` does, with the node's key, but from fixed inputs (preimage, payment secret,
//! timestamp): `mint` draws its preimage and secret at random, and secp256k1's public-key
//! recovery takes a data-dependent number of instructions, so random invoices move the 402
//! count by about ±1.5 % from run to run; fixed ones make it repeat.
//!
//! Setup is not counted: building the runtime (current-thread tokio, whose `block_on` drives
//! every case alike), the routers and the request, `check_facilitator`, and one warm-up request
//! of the same case on the same `Router` (so lazily initialised state is not counted as part of
//! "one request"). Neither is teardown: checking the status and dropping the runtime.
//!
//! ```text
//! bench/instructions-ratio.sh
//! ```
//!
//! runs `cargo bench -p x402-lightning-bench --bench instructions` with one codegen unit (so the
//! bare cases count the same whatever the library's code) and prints the ratios.
//!
//! Needs valgrind and `gungraun-runner` of the same version as `gungraun`:
//! `cargo install gungraun-runner --version 0.20.0 --locked`.

#[path = "shared/demo.rs"]
mod demo;

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::pin;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::response::Response;
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bytes::Buf;
use gungraun::{library_benchmark, library_benchmark_group, main};
use http::header::HOST;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use lightning_invoice::{InvoiceBuilder, PaymentSecret};
use tokio::runtime::Runtime;
use tower::util::MapResponseLayer;
use tower::{Layer as _, Service, ServiceExt as _};
use x402_lightning::mock::MockNode;
use x402_lightning::types::{
    ASSET_BTC, LightningExtra, SupportedExtra, SupportedKind, X402_VERSION,
};
use x402_lightning::{
    Facilitator, FacilitatorCall, FacilitatorError, Network, PaymentRequirements,
    RequirementsRequest, Scheme, SettleRequest, SettleResponse, SupportedResponse, VerifyRequest,
    VerifyResponse, X402Layer, X402Service,
};

/// The demo's price of `GET /weather`.
/// Invoices minted in setup and handed out in turn: more than the requests of one case.
const MINTED_INVOICES: u8 = 4;
/// The facilitator's node key: fixed, so its invoices are the same in every run.
const NODE_SECRET: &str = "1111111111111111111111111111111111111111111111111111111111111111";
/// When the invoices were created (2026-01-01) and how long they stay payable (10 years), fixed
/// for the same reason.
const INVOICE_CREATED_AT: Duration = Duration::from_secs(1_767_225_600);
const INVOICE_EXPIRY: Duration = Duration::from_secs(10 * 365 * 86_400);

/// One of the four measured requests.
#[derive(Clone, Copy, Debug)]
enum Case {
    FreeBare,
    FreeLayered,
    PricedBare,
    PricedLayered,
    FreeNoopLayer,
    FreeOuterLayer,
}

impl Case {
    fn path(self) -> &'static str {
        match self {
            Case::FreeBare | Case::FreeLayered | Case::FreeNoopLayer | Case::FreeOuterLayer => {
                "/health"
            }
            Case::PricedBare | Case::PricedLayered => "/weather",
        }
    }

    fn expected_status(self) -> StatusCode {
        match self {
            Case::PricedLayered => StatusCode::PAYMENT_REQUIRED,
            _ => StatusCode::OK,
        }
    }

    fn request(self) -> Request<Body> {
        Request::get(self.path())
            .header(HOST, "localhost:3000")
            .body(Body::empty())
            .expect("a valid request")
    }
}

/// A facilitator in the same process: requirements carry invoices minted in setup with a
/// `MockNode`'s key, `/supported` lists the network with the node's `payTo`. Verify and settle
/// are never called by these cases.
#[derive(Debug)]
struct InProcessFacilitator {
    network: Network,
    pay_to: String,
    invoices: Vec<String>,
    next: AtomicUsize,
}

impl InProcessFacilitator {
    fn new(node: &MockNode, network: Network, description: &str) -> Self {
        let invoices = (1..=MINTED_INVOICES)
            .map(|seed| mint_fixed(node, network, description, seed))
            .collect();
        Self {
            network,
            pay_to: node.pay_to().to_string(),
            invoices,
            next: AtomicUsize::new(0),
        }
    }

    fn answer(
        &self,
        request: &RequirementsRequest,
    ) -> Result<PaymentRequirements, FacilitatorError> {
        if request.amount != demo::WEATHER_MSAT || request.network != self.network {
            return Err(unused(FacilitatorCall::Requirements));
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.invoices.len();
        Ok(PaymentRequirements {
            scheme: Scheme::Exact,
            network: self.network,
            max_amount_required: request.amount,
            asset: ASSET_BTC.to_owned(),
            pay_to: self.pay_to.clone(),
            resource: request.resource.clone(),
            description: request.description.clone(),
            mime_type: request.mime_type.clone(),
            output_schema: None,
            max_timeout_seconds: request.max_timeout_seconds,
            extra: LightningExtra::new(self.invoices[turn].clone()),
        })
    }
}

/// An invoice for the price of `GET /weather` signed with `node`'s key, as `MockNode::mint`
/// makes them, with every input fixed by `seed`.
fn mint_fixed(node: &MockNode, network: Network, description: &str, seed: u8) -> String {
    let secp = Secp256k1::signing_only();
    let key = SecretKey::from_str(&node.secret_hex()).expect("the node's key");
    let preimage = [seed; 32];
    InvoiceBuilder::new(network.currency())
        .description(description.to_owned())
        .amount_milli_satoshis(demo::WEATHER_MSAT)
        .payment_hash(sha256::Hash::hash(&preimage))
        .payment_secret(PaymentSecret([seed.wrapping_add(0x80); 32]))
        .duration_since_epoch(INVOICE_CREATED_AT)
        .expiry_time(INVOICE_EXPIRY)
        .min_final_cltv_expiry_delta(18)
        .build_signed(|message| secp.sign_ecdsa_recoverable(message, &key))
        .expect("a valid invoice")
        .to_string()
}

fn unused(call: FacilitatorCall) -> FacilitatorError {
    FacilitatorError::InvalidReply {
        call,
        reason: "not served by the benchmark's facilitator".to_owned(),
    }
}

impl Facilitator for InProcessFacilitator {
    fn requirements(
        &self,
        request: &RequirementsRequest,
    ) -> impl Future<Output = Result<PaymentRequirements, FacilitatorError>> + Send {
        ready(self.answer(request))
    }

    fn verify(
        &self,
        _request: &VerifyRequest,
    ) -> impl Future<Output = Result<VerifyResponse, FacilitatorError>> + Send {
        ready(Err(unused(FacilitatorCall::Verify)))
    }

    fn settle(
        &self,
        _request: &SettleRequest,
    ) -> impl Future<Output = Result<SettleResponse, FacilitatorError>> + Send {
        ready(Err(unused(FacilitatorCall::Settle)))
    }

    fn supported(
        &self,
    ) -> impl Future<Output = Result<SupportedResponse, FacilitatorError>> + Send {
        ready(Ok(SupportedResponse {
            kinds: vec![SupportedKind {
                x402_version: X402_VERSION,
                scheme: Scheme::Exact.as_str().to_owned(),
                network: self.network.as_str().to_owned(),
                extra: Some(SupportedExtra {
                    pay_to: Some(self.pay_to.clone()),
                }),
            }],
        }))
    }
}

/// The service a case sends its request to.
#[derive(Clone)]
enum App {
    Router(Router),
    /// `X402Layer` around the `Router`, not inside it.
    Outer(X402Service<Router, InProcessFacilitator>),
}

impl App {
    /// One request on `runtime`. Each kind of service gets its own future type, so a bare
    /// `Router`'s request does not carry the layered service's larger future around.
    fn serve_one(&self, runtime: &Runtime, request: Request<Body>) -> (StatusCode, usize) {
        match self {
            App::Router(router) => runtime.block_on(serve_one(router.clone(), request)),
            App::Outer(service) => runtime.block_on(serve_one(service.clone(), request)),
        }
    }
}

/// What the measured request needs, built outside the measurement.
struct Prepared {
    case: Case,
    runtime: Runtime,
    app: App,
    request: Request<Body>,
}

/// What the measured request returns; checked and dropped outside the measurement.
struct Outcome {
    case: Case,
    status: StatusCode,
    body_bytes: usize,
    _runtime: Runtime,
    _app: App,
}

fn prepare(case: Case) -> Prepared {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let app = match case {
        Case::FreeBare | Case::PricedBare => App::Router(demo::routes()),
        Case::FreeLayered | Case::PricedLayered => {
            App::Router(demo::routes().layer(runtime.block_on(x402_layer())))
        }
        Case::FreeNoopLayer => {
            App::Router(demo::routes().layer(MapResponseLayer::new(|response: Response| response)))
        }
        Case::FreeOuterLayer => App::Outer(runtime.block_on(x402_layer()).layer(demo::routes())),
    };
    let (status, _) = app.serve_one(&runtime, case.request());
    assert_eq!(status, case.expected_status(), "warm-up of {case:?}");
    Prepared {
        case,
        runtime,
        app,
        request: case.request(),
    }
}

/// One request through the service, its body read to the end.
async fn serve_one<S, B>(service: S, request: Request<Body>) -> (StatusCode, usize)
where
    S: Service<Request<Body>, Response = http::Response<B>, Error = Infallible>,
    B: HttpBody,
    B::Data: Buf,
    B::Error: fmt::Debug,
{
    let response = match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let mut body = pin!(body);
    let mut body_bytes = 0;
    while let Some(frame) = body.as_mut().frame().await {
        if let Ok(data) = frame.expect("response body").into_data() {
            body_bytes += data.remaining();
        }
    }
    (parts.status, body_bytes)
}

fn check(outcome: Outcome) {
    assert_eq!(
        outcome.status,
        outcome.case.expected_status(),
        "{:?}",
        outcome.case
    );
    assert!(outcome.body_bytes > 0, "{:?}: empty body", outcome.case);
}

#[library_benchmark]
#[bench::free_bare(args = (Case::FreeBare), setup = prepare, teardown = check)]
#[bench::free_layered(args = (Case::FreeLayered), setup = prepare, teardown = check)]
#[bench::priced_bare(args = (Case::PricedBare), setup = prepare, teardown = check)]
#[bench::priced_layered(args = (Case::PricedLayered), setup = prepare, teardown = check)]
#[bench::free_noop_layer(args = (Case::FreeNoopLayer), setup = prepare, teardown = check)]
#[bench::free_outer_layer(args = (Case::FreeOuterLayer), setup = prepare, teardown = check)]
fn one_request(prepared: Prepared) -> Outcome {
    let Prepared {
        case,
        runtime,
        app,
        request,
    } = prepared;
    let (status, body_bytes) = app.serve_one(&runtime, black_box(request));
    black_box(Outcome {
        case,
        status,
        body_bytes,
        _runtime: runtime,
        _app: app,
    })
}

library_benchmark_group!(name = router; benchmarks = one_request);

main!(library_benchmark_groups = router);

/// The layer with the demo's prices, `payTo` pinned to the node, the facilitator checked before
/// the first request.
async fn x402_layer() -> X402Layer<InProcessFacilitator> {
    let node = MockNode::from_secret_hex(NODE_SECRET).expect("the node's key");
    let facilitator = InProcessFacilitator::new(&node, Network::Regtest, "Current weather");
    let layer = demo::prices(facilitator)
        .pay_to(node.node_id())
        .build()
        .expect("layer configuration");
    layer
        .check_facilitator()
        .await
        .expect("the in-process facilitator supports the network");
    layer
}
