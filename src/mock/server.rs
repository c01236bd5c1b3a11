//! The mock facilitator's HTTP side: the four routes of the [wire contract](crate::protocol),
//! this project's `GET /invoices/{paymentHash}`, fault injection and the call record around
//! them.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::DisplayHex as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{StatusCode, Uri};
use serde_json::{Value, json};

use super::RecordedCall;
use super::fault::{Fault, FaultPlan, InvoiceFault};
use super::ledger::{Ledger, LightningPayment, PayError, Rules};
use super::node::{InvoiceSpec, MintedInvoice, MockNode};
use crate::clock::SharedClock;
use crate::facilitator::FacilitatorCall;
use crate::layer::Flows;
use crate::lnbtc::binding::RequestHash;
use crate::lnbtc::reason as lnbtc_reason;
use crate::lnbtc::settle::{self, SettlePolicy};
use crate::lnbtc::types as lnbtc;
use crate::network::Network;
use crate::types::{
    ASSET_BTC, LightningExtra, PaymentRequirements, RequirementsRequest, Scheme, SettleResponse,
    SupportedExtra, SupportedKind, SupportedResponse, VerifyResponse, X402_VERSION,
};

/// Everything the server and the test-facing handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) node: MockNode,
    pub(crate) rules: Rules,
    pub(crate) invoice_expiry: Duration,
    pub(crate) clock: SharedClock,
    pub(crate) bearer_token: Option<String>,
    pub(crate) record_calls: bool,
    /// The flows served and announced, and whether `/supported` names `payTo`.
    pub(crate) served: Mutex<Served>,
    pub(crate) ledger: Mutex<Ledger>,
    pub(crate) faults: Mutex<[FaultPlan; 5]>,
    pub(crate) calls: Mutex<Vec<RecordedCall>>,
}

/// What the mock serves: its flows (announced in `/supported`; a call of another flow is a
/// 400), and whether `/supported` announces its node as `payTo`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Served {
    pub(crate) flows: Flows,
    pub(crate) announce_pay_to: bool,
}

/// The answer to a call of a flow the mock does not serve.
fn not_served(flow: &str) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        format!("{flow} is not served by this facilitator"),
    )
}

/// Locks a mutex, shrugging off poisoning: every critical section leaves the data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a handler answers, before it becomes a response.
enum Reply {
    Json(StatusCode, String),
    Garbage,
}

/// The flows' names in the answer to a call of a flow not served.
const SEED_FLOW: &str = "the seed flow (x402 version 1)";
const LNBTC_FLOW: &str = "exact on lnbtc (x402 version 2)";

/// The body of an injected garbage reply.
const GARBAGE: &str = "<html>502 Bad Gateway</html> not json {";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/requirements", post(requirements))
        .route("/verify", post(verify))
        .route("/settle", post(settle))
        .route("/supported", get(supported))
        .route("/invoices/{payment_hash}", get(invoice))
        .route("/pay", post(pay))
        .with_state(shared)
}

/// `POST /pay {"invoice": "…"}`: the mock's Lightning network pays an invoice the mock minted
/// and answers `{"preimage", "paymentHash", "amountMsat"}` (404 unknown, 410 expired, 409
/// already paid). Not a facilitator call: no token, no faults, no record.
async fn pay(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct PayRequest {
        invoice: String,
    }
    let (status, reply) = match serde_json::from_slice::<PayRequest>(&body) {
        Err(err) => (
            StatusCode::BAD_REQUEST,
            json!({ "error": format!("expected {{\"invoice\": \"<bolt11>\"}}: {err}") }),
        ),
        Ok(request) => match shared.pay_invoice(&request.invoice) {
            Ok(paid) => (
                StatusCode::OK,
                json!({
                    "preimage": paid.preimage,
                    "paymentHash": paid.payment_hash,
                    "amountMsat": paid.amount_msat.to_string(),
                }),
            ),
            Err(err) => {
                let status = match err {
                    PayError::Unknown => StatusCode::NOT_FOUND,
                    PayError::Expired => StatusCode::GONE,
                    PayError::AlreadyPaid => StatusCode::CONFLICT,
                };
                (status, json!({ "error": err.to_string() }))
            }
        },
    };
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        reply.to_string(),
    )
        .into_response()
}

async fn requirements(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = FacilitatorCall::Requirements;
    shared.answer(call, call.path(), headers, body).await
}

async fn verify(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let call = FacilitatorCall::Verify;
    shared.answer(call, call.path(), headers, body).await
}

async fn settle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let call = FacilitatorCall::Settle;
    shared.answer(call, call.path(), headers, body).await
}

async fn supported(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let call = FacilitatorCall::Supported;
    shared
        .answer(call, call.path(), headers, Bytes::new())
        .await
}

/// `GET /invoices/{paymentHash}`: the path as received (its hash still percent-encoded, so that
/// any segment reaches the honest answer, which refuses what is not a payment hash).
async fn invoice(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let call = FacilitatorCall::Invoice;
    shared.answer(call, uri.path(), headers, Bytes::new()).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    Reply::Json(status, json!({ "error": message.into() }).to_string())
}

fn ok<T: serde::Serialize>(body: &T) -> Reply {
    // Plain data types: serializing cannot fail.
    Reply::Json(
        StatusCode::OK,
        serde_json::to_string(body).unwrap_or_default(),
    )
}

impl Shared {
    /// Answers one HTTP call to `path`: authorization, faults, the honest answer, the record.
    async fn answer(
        &self,
        call: FacilitatorCall,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let authorized = self.authorized(&headers);
        let (status, response_body) = self
            .exchange(call, authorized, path.to_owned(), headers, body)
            .await;
        (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            response_body,
        )
            .into_response()
    }

    /// Answers one call to `path` (the call's own, or `/invoices/{paymentHash}`), over HTTP or
    /// in process: the status and body a client receives.
    pub(crate) async fn exchange(
        &self,
        call: FacilitatorCall,
        authorized: bool,
        path: String,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, Bytes) {
        let started = Instant::now();
        // A refused call leaves the faults waiting for the next one.
        let fault = authorized
            .then(|| lock(&self.faults)[call.index()].take())
            .flatten();

        let reply = if !authorized {
            error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
        } else {
            match &fault {
                Some(fault) if !fault.applies_to(call) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("mock misconfigured: fault `{fault}` does not apply to {call}"),
                ),
                Some(Fault::Status(status)) => {
                    error(*status, format!("injected fault: status {status}"))
                }
                Some(Fault::Garbage) => Reply::Garbage,
                Some(Fault::Delay(delay)) => {
                    tokio::time::sleep(*delay).await;
                    self.honest(call, &path, &body, None)
                }
                other => self.honest(call, &path, &body, other.as_ref()),
            }
        };

        let (status, response_body) = match reply {
            Reply::Json(status, body) => (status, Bytes::from(body)),
            Reply::Garbage => (StatusCode::OK, Bytes::from_static(GARBAGE.as_bytes())),
        };

        if self.record_calls {
            let service_time = started.elapsed();
            let mut headers = headers;
            if let Some(credentials) = headers.get_mut(AUTHORIZATION) {
                credentials.set_sensitive(true); // kept for assertions, hidden from `Debug`
            }
            lock(&self.calls).push(RecordedCall {
                call,
                path,
                request_body: body,
                headers,
                status,
                response_body: response_body.clone(),
                fault,
                service_time,
            });
        }
        (status, response_body)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.bearer_token else {
            return true;
        };
        headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| given == token)
    }

    /// The answer of an honest facilitator to a call to `path`, bent by a call-specific fault.
    fn honest(
        &self,
        call: FacilitatorCall,
        path: &str,
        body: &[u8],
        fault: Option<&Fault>,
    ) -> Reply {
        let served = *lock(&self.served);
        match call {
            FacilitatorCall::Requirements => {
                let invoice_fault = match fault {
                    Some(Fault::Invoice(invoice_fault)) => Some(*invoice_fault),
                    _ => None,
                };
                self.requirements(body, invoice_fault)
            }
            FacilitatorCall::Verify if !served.flows.v1() => not_served(SEED_FLOW),
            FacilitatorCall::Verify => match fault {
                Some(Fault::Invalid(reason)) => ok(&VerifyResponse {
                    is_valid: false,
                    invalid_reason: Some(reason.clone()),
                    payer: None,
                }),
                _ => self.verify(body),
            },
            FacilitatorCall::Settle if is_version_2(body) && !served.flows.lnbtc() => {
                not_served(LNBTC_FLOW)
            }
            FacilitatorCall::Settle if is_version_2(body) => match fault {
                Some(Fault::SettleFailed(reason)) => ok(&lnbtc::SettleResponse::failure(
                    self.rules.network.lnbtc_id(),
                    reason.clone(),
                )),
                _ => self.settle_lnbtc(body),
            },
            FacilitatorCall::Settle if !served.flows.v1() => not_served(SEED_FLOW),
            FacilitatorCall::Settle => match fault {
                Some(Fault::SettleFailed(reason)) => ok(&self.failed_settle(reason, None)),
                _ => self.settle(body),
            },
            FacilitatorCall::Supported => ok(&self.supported(served)),
            FacilitatorCall::Invoice => self.invoice_status(path),
        }
    }

    /// `GET /invoices/{paymentHash}`: where an invoice minted here stands (see
    /// [`Ledger::invoice_status`]); 400 for a malformed hash, 404 for one not minted here.
    fn invoice_status(&self, path: &str) -> Reply {
        let asked = path
            .strip_prefix(FacilitatorCall::Invoice.path())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or_default();
        let Some(payment_hash) = parse_payment_hash(asked) else {
            return error(
                StatusCode::BAD_REQUEST,
                "paymentHash must be 64 lowercase hex characters",
            );
        };
        match lock(&self.ledger).invoice_status(&payment_hash) {
            Some(status) => ok(&status),
            None => error(StatusCode::NOT_FOUND, "unknown invoice: not minted here"),
        }
    }

    /// `/supported`: a kind per flow served, each announcing the node as `payTo` unless told
    /// not to.
    fn supported(&self, served: Served) -> SupportedResponse {
        let extra = served.announce_pay_to.then(|| SupportedExtra {
            pay_to: Some(self.node.pay_to().to_string()),
        });
        let mut kinds = Vec::new();
        if served.flows.v1() {
            kinds.push(SupportedKind {
                x402_version: X402_VERSION,
                scheme: Scheme::Exact.as_str().to_owned(),
                network: self.rules.network.as_str().to_owned(),
                extra: extra.clone(),
            });
        }
        if served.flows.lnbtc() {
            kinds.push(SupportedKind {
                x402_version: lnbtc::X402_VERSION_2,
                scheme: lnbtc::SCHEME_EXACT.to_owned(),
                network: self.rules.network.lnbtc_id().to_owned(),
                extra,
            });
        }
        SupportedResponse { kinds }
    }

    fn requirements(&self, body: &[u8], fault: Option<InvoiceFault>) -> Reply {
        let request: RequirementsRequest = match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid requirements request: {err}"),
                );
            }
        };
        if request.x402_version != X402_VERSION {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unsupported x402Version {}", request.x402_version),
            );
        }
        if request.network != self.rules.network {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "network {} is not served here, only {}",
                    request.network, self.rules.network
                ),
            );
        }
        if request.amount == 0 {
            return error(StatusCode::BAD_REQUEST, "amount must be at least 1 msat");
        }
        // An invoice for the lnbtc flow too: described only by the request hash, and expiring
        // after exactly `maxTimeoutSeconds`.
        let (description_hash, expiry) = match &request.description_hash {
            None => (None, self.invoice_expiry),
            Some(hex) => match RequestHash::from_hex(hex) {
                Some(hash) if request.max_timeout_seconds > 0 => (
                    Some(hash.0),
                    Duration::from_secs(request.max_timeout_seconds),
                ),
                Some(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "maxTimeoutSeconds must be positive: it is the invoice's expiry",
                    );
                }
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "descriptionHash must be 64 lowercase hex characters",
                    );
                }
            },
        };

        let mut spec = InvoiceSpec {
            network: self.rules.network,
            amount_msat: request.amount,
            description: request.description.clone(),
            description_hash,
            created_at: self.clock.unix_now(),
            expiry,
        };
        let mut minter = self.node.clone();
        let mut max_amount_required = request.amount;
        let mut currency = self.rules.network.currency();
        match fault {
            None => {}
            Some(InvoiceFault::WrongAmount) => spec.amount_msat = other_amount(request.amount),
            Some(InvoiceFault::UnaskedAmount) => {
                spec.amount_msat = other_amount(request.amount);
                max_amount_required = spec.amount_msat;
            }
            Some(InvoiceFault::WrongNetwork) => {
                currency = other_network(self.rules.network).currency()
            }
            Some(InvoiceFault::WrongPayee) | Some(InvoiceFault::ForeignPayTo) => {
                minter = MockNode::random();
            }
            Some(InvoiceFault::Expired) => {
                spec.created_at = spec.created_at.saturating_sub(Duration::from_secs(7200));
                spec.expiry = Duration::from_secs(60);
            }
            Some(InvoiceFault::WrongDescriptionHash) => {
                let asked = spec.description_hash.unwrap_or_default();
                spec.description_hash = Some(sha256::Hash::hash(&asked).to_byte_array());
            }
            Some(InvoiceFault::WrongExpiry) => spec.expiry += Duration::from_secs(1),
        }
        let pay_to = match fault {
            Some(InvoiceFault::ForeignPayTo) => minter.pay_to().to_string(),
            _ => self.node.pay_to().to_string(),
        };

        let MintedInvoice { invoice, preimage } = match minter.mint_on(currency, &spec) {
            Ok(minted) => minted,
            Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
        };
        lock(&self.ledger).record_invoice(&invoice, preimage);
        tracing::debug!(payment_hash = %invoice.payment_hash(), amount_msat = spec.amount_msat, "mock minted invoice");

        ok(&PaymentRequirements {
            scheme: Scheme::Exact,
            network: self.rules.network,
            max_amount_required,
            asset: ASSET_BTC.to_owned(),
            pay_to,
            resource: request.resource,
            description: request.description,
            mime_type: request.mime_type,
            output_schema: None,
            max_timeout_seconds: request.max_timeout_seconds,
            extra: LightningExtra::new(invoice.to_string()),
        })
    }

    fn verify(&self, body: &[u8]) -> Reply {
        let checked = match parse_payment_request(body) {
            Ok(request) => self.rules.authenticate(&request).and_then(|authorization| {
                lock(&self.ledger).check(
                    &authorization,
                    &self.rules.node_id,
                    self.clock.unix_now(),
                )?;
                Ok(authorization)
            }),
            Err(reply) => return reply,
        };
        ok(&match checked {
            Ok(authorization) => VerifyResponse {
                is_valid: true,
                invalid_reason: None,
                payer: Some(authorization.payer_id()),
            },
            Err(rejection) => VerifyResponse {
                is_valid: false,
                invalid_reason: Some(rejection.reason.to_owned()),
                payer: rejection.payer,
            },
        })
    }

    fn settle(&self, body: &[u8]) -> Reply {
        let settled = match parse_payment_request(body) {
            Ok(request) => self.rules.authenticate(&request).and_then(|authorization| {
                let now = self.clock.unix_now();
                let payment_hash =
                    lock(&self.ledger).settle(&authorization, &self.rules.node_id, now)?;
                Ok((payment_hash, authorization))
            }),
            Err(reply) => return reply,
        };
        match settled {
            Ok((payment_hash, authorization)) => {
                let transaction = payment_hash.to_lower_hex_string();
                tracing::debug!(payment_hash = %transaction, "mock settled invoice");
                ok(&SettleResponse {
                    success: true,
                    error_reason: None,
                    transaction,
                    network: self.rules.network,
                    payer: Some(authorization.payer_id()),
                })
            }
            Err(rejection) => ok(&self.failed_settle(rejection.reason, rejection.payer)),
        }
    }

    /// `/settle` of x402 version 2: the scheme's ordered validation on the JSON received, then
    /// an atomic insert of the replay key.
    fn settle_lnbtc(&self, body: &[u8]) -> Reply {
        let network = self.rules.network.lnbtc_id();
        let request: Value = match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(err) => {
                return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {err}"));
            }
        };
        let policy = SettlePolicy {
            networks: vec![self.rules.network],
            skew_secs: crate::lnbtc::DEFAULT_SKEW_SECS,
        };
        let now = self.clock.unix_now().as_secs();
        let proof = match settle::validate(
            &request["paymentPayload"],
            &request["paymentRequirements"],
            &policy,
            now,
        ) {
            Ok(proof) => proof,
            Err(rejection) => {
                tracing::debug!(
                    reason = rejection.reason,
                    step = rejection.step,
                    "mock refused lnbtc settle"
                );
                return ok(&lnbtc::SettleResponse::failure(network, rejection.reason));
            }
        };
        if !lock(&self.ledger).record_upfront(proof.replay_key.clone()) {
            return ok(&lnbtc::SettleResponse::failure(
                network,
                lnbtc_reason::DUPLICATE_SETTLEMENT,
            ));
        }
        tracing::debug!(payment_hash = %proof.invoice.payment_hash_hex(), "mock settled lnbtc proof");
        ok(&proof.success_response())
    }

    /// Pays an invoice minted here over the mock's Lightning network.
    pub(crate) fn pay_invoice(&self, invoice: &str) -> Result<LightningPayment, PayError> {
        let payment_hash = crate::lnbtc::invoice::decode(invoice)
            .map_err(|_| PayError::Unknown)?
            .payment_hash;
        lock(&self.ledger).pay_invoice(&payment_hash, invoice, self.clock.unix_now())
    }

    fn failed_settle(&self, reason: &str, payer: Option<String>) -> SettleResponse {
        SettleResponse {
            success: false,
            error_reason: Some(reason.to_owned()),
            transaction: String::new(),
            network: self.rules.network,
            payer,
        }
    }
}

/// A `/verify` or `/settle` body as JSON; not JSON at all is answered 400 (JSON that is not a
/// payment request gets a verdict, as x402 facilitators give).
fn parse_payment_request(body: &[u8]) -> Result<Value, Reply> {
    serde_json::from_slice(body)
        .map_err(|err| error(StatusCode::BAD_REQUEST, format!("body is not JSON: {err}")))
}

/// A payment hash as the wire writes it: 64 lowercase hex characters (the same strict rule as a
/// request hash's).
fn parse_payment_hash(hex: &str) -> Option<[u8; 32]> {
    RequestHash::from_hex(hex).map(|hash| hash.0)
}

/// Whether a `/settle` body speaks x402 version 2: the request and its payment both say so
/// (a seed-flow payment under a wrong outer version is the seed flow's verdict to give).
fn is_version_2(body: &[u8]) -> bool {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let v2 = Some(u64::from(lnbtc::X402_VERSION_2));
    request["x402Version"].as_u64() == v2 && request["paymentPayload"]["x402Version"].as_u64() == v2
}

/// An amount that is surely not `amount`.
fn other_amount(amount: u64) -> u64 {
    amount.checked_add(1_000).unwrap_or_else(|| amount - 1_000)
}

/// A network that is surely not `network`.
fn other_network(network: Network) -> Network {
    match network {
        Network::Regtest => Network::Testnet,
        _ => Network::Regtest,
    }
}
