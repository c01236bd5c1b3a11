//! The accounts' routes (`PROTOCOL.md` Part 3): deposits, the signed account read and
//! withdrawals. Handlers translate; the [books](crate::books) keep the money.
//!
//! | route | answers |
//! |---|---|
//! | `POST /accounts/deposits` | 201 the deposit invoice; 400 `{"error"}` for a bad request; 429 when the account has 16 unpaid deposit invoices; 502/504 the node |
//! | `GET /accounts/deposits/{paymentHash}` | 200 its state (`pending`, `credited`, `expired`), credited first if the node reports it paid; 404 unknown |
//! | `GET /accounts/{network}/{account}` | 200 balance, held, available; 401 without a valid `X402-Account-Signature` (checked first); 404 no such account |
//! | `POST /accounts/withdrawals` | 200 `succeeded` or `failed`, 202 `pending`; 400 `{"error", "reason"}`; 409 in flight |
//! | `GET /accounts/{network}/{account}/withdrawals/{paymentHash}` | as the withdrawal's own answer; 401, 404 |

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use serde_json::json;
use x402_lightning::Network;
use x402_lightning::lnbtc::invoice::{decode, parse_pay_to};
use x402_lightning::v1::accounts::{
    AccountBalance, DepositInvoice, DepositRequest, DepositState as WireDepositState,
    DepositStatus, Withdrawal, WithdrawalRequest, WithdrawalState as WireWithdrawalState,
};
use x402_lightning::v1::reason;
use x402_lightning::v1::sign::{self, ACCOUNT_SIGNATURE_HEADER, SignatureError};
use x402_lightning::v1::verify::parse_network_id;

use super::requirements::MAX_AMOUNT_MSAT;
use super::seed::{node_failed, store_failed};
use super::{ApiError, Body, Service};
use crate::books::{
    AccountId, DepositRecord, DepositState, WithdrawalEnd, WithdrawalRecord, WithdrawalStart,
    WithdrawalState,
};
use crate::node::{
    InvoiceDescription, InvoiceRequest, InvoiceState, PaymentRequest, PaymentStatus,
};

/// How many unexpired pending deposits an account may have: a new one is a 429 beyond.
const MAX_PENDING_DEPOSITS: u32 = 16;

/// How many pending deposits of an account a read checks with the node: all of them (twice the
/// bound, for the few concurrent requests that may pass it together).
const DEPOSITS_CHECKED_PER_READ: u32 = 2 * MAX_PENDING_DEPOSITS;

/// How long after its expiry a pending deposit is still checked with the node, in seconds.
pub(crate) const DEPOSIT_GRACE_SECS: u64 = 3600;

/// How long the node may keep trying a withdrawal's payment, in seconds.
const PAYMENT_TIMEOUT_SECS: u32 = 60;

/// A refusal of the accounts' routes: 400 `{"error", "reason"}` (or another status).
fn refused(status: StatusCode, reason: &'static str, error: impl Into<String>) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": error.into(), "reason": reason })),
    )
        .into_response();
    super::no_store(&mut response);
    response
}

/// A served network in either id form.
fn served_network(service: &Service, id: &str) -> Option<Network> {
    parse_network_id(id).filter(|network| service.policy.networks.contains(network))
}

/// An account as the wire writes it: 66 lowercase hex of a compressed public key.
fn valid_account(account: &str) -> bool {
    parse_pay_to(account).is_some()
}

/// A payment hash as the wire writes it: 64 lowercase hex.
pub(crate) fn parse_payment_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    <[u8; 32]>::from_hex(text).ok()
}

/// `POST /accounts/deposits`.
pub(crate) async fn deposit(
    State(service): State<Arc<Service>>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: DepositRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(format!(
            "expected {{\"network\", \"account\", \"amount\"}} (amount: msat as a decimal string): {err}"
        ))
    })?;
    let network = served_network(&service, &request.network).ok_or_else(|| {
        ApiError::bad_request(format!("network {} is not served here", request.network))
    })?;
    if !valid_account(&request.account) {
        return Err(ApiError::bad_request(
            "account must be a compressed secp256k1 public key, 66 lowercase hex characters",
        ));
    }
    let most = MAX_AMOUNT_MSAT.min(crate::books::MAX_BALANCE_MSAT);
    if !(1..=most).contains(&request.amount) {
        return Err(ApiError::bad_request(format!(
            "amount must be 1 to {most} msat"
        )));
    }
    let asked = InvoiceRequest {
        network,
        amount_msat: request.amount,
        description: InvoiceDescription::Text(format!("deposit to {}", request.account)),
        expiry_secs: service.deposit_expiry_secs,
    };
    let node_id = service
        .node
        .node_id()
        .await
        .map_err(|err| node_failed(&err))?;
    let invoice = service
        .node
        .create_invoice(&asked)
        .await
        .map_err(|err| node_failed(&err))?;
    let decoded = decode(&invoice)
        .ok()
        .filter(|decoded| {
            decoded.payee == node_id
                && decoded.currency == network.currency()
                && decoded.amount_msat == Some(request.amount)
                && decoded.end() > service.now()
        })
        .ok_or_else(|| {
            tracing::error!("the Lightning node minted a wrong deposit invoice");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the Lightning node minted a deposit invoice of other terms than asked",
            )
        })?;
    let record = DepositRecord {
        payment_hash: decoded.payment_hash_hex(),
        account: AccountId {
            network,
            account: request.account.clone(),
        },
        network_id: request.network.clone(),
        amount_msat: request.amount,
        invoice: invoice.clone(),
        expires_at: decoded.end(),
        state: DepositState::Pending,
    };
    let recorded = service
        .store
        .record_deposit(&record, service.now(), MAX_PENDING_DEPOSITS)
        .await
        .map_err(|err| store_failed(&err))?;
    if !recorded {
        // The node's invoice stays unpaid and expires; nobody is told of it.
        let _ = service.node.cancel_invoice(&decoded.payment_hash).await;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this account has {MAX_PENDING_DEPOSITS} unpaid deposit invoices: pay one, or \
                 wait until they expire"
            ),
        ));
    }
    tracing::info!(payment_hash = %record.payment_hash, account = %request.account, amount_msat = request.amount, "deposit invoice");
    service.metrics.deposit("created");
    let mut response = (
        StatusCode::CREATED,
        Json(DepositInvoice {
            network: request.network,
            account: request.account,
            amount: request.amount,
            invoice,
            payment_hash: record.payment_hash,
            expires_at: record.expires_at,
        }),
    )
        .into_response();
    super::no_store(&mut response);
    Ok(response)
}

/// `GET /accounts/deposits/{paymentHash}`.
pub(crate) async fn deposit_status(
    State(service): State<Arc<Service>>,
    Path(payment_hash): Path<String>,
) -> Result<Json<DepositStatus>, ApiError> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "no deposit of this payment hash");
    parse_payment_hash(&payment_hash).ok_or_else(unknown)?;
    let record = service
        .store
        .deposit(&payment_hash)
        .await
        .map_err(|err| store_failed(&err))?
        .ok_or_else(unknown)?;
    let state = match refresh_deposit(&service, &record).await {
        Ok(state) => state,
        // The node cannot be asked: the deposit stands as the books know it.
        Err(err) => {
            tracing::warn!(%payment_hash, ?err, "a deposit could not be checked");
            if service.now() >= record.expires_at {
                WireDepositState::Expired
            } else {
                WireDepositState::Pending
            }
        }
    };
    Ok(Json(DepositStatus {
        network: record.network_id,
        account: record.account.account,
        amount: record.amount_msat,
        payment_hash: record.payment_hash,
        state,
    }))
}

/// Where a deposit stands, crediting it first if the node reports its invoice paid.
pub(crate) async fn refresh_deposit(
    service: &Service,
    record: &DepositRecord,
) -> Result<WireDepositState, ApiError> {
    if record.state == DepositState::Credited {
        return Ok(WireDepositState::Credited);
    }
    let Some(payment_hash) = parse_payment_hash(&record.payment_hash) else {
        return Ok(WireDepositState::Pending);
    };
    let lookup = service
        .node
        .lookup_invoice(&payment_hash)
        .await
        .map_err(|err| node_failed(&err))?;
    if lookup.is_some_and(|lookup| lookup.state == InvoiceState::Settled) {
        let credited = service
            .store
            .credit_deposit(&record.payment_hash, service.now())
            .await
            .map_err(|err| store_failed(&err))?;
        if credited {
            tracing::info!(payment_hash = %record.payment_hash, account = %record.account.account, amount_msat = record.amount_msat, "deposit credited");
            service.metrics.deposit("credited");
        }
        return Ok(WireDepositState::Credited);
    }
    Ok(if service.now() >= record.expires_at {
        WireDepositState::Expired
    } else {
        WireDepositState::Pending
    })
}

/// Checks the `X402-Account-Signature` of a read of `account` on `network_id` (as the path
/// writes it: the signature may be over the path's raw segment, `uri`'s, or over its decoded
/// text): 401 without a valid one.
fn check_read_signature(
    service: &Service,
    headers: &HeaderMap,
    uri: &Uri,
    network_id: &str,
    account: &str,
) -> Result<(), ApiError> {
    let unauthorized = |why: &str| {
        ApiError::unsigned(format!(
            "{why}: send X402-Account-Signature: <unix seconds>.<signature of \
                 `x402-lightning account {network_id} {account} <unix seconds>`>"
        ))
    };
    let mut values = headers.get_all(ACCOUNT_SIGNATURE_HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(unauthorized("one account signature is required"));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the account signature is not text"))?;
    let verify = |network: &str| {
        sign::verify_account_read(
            value,
            network,
            account,
            service.now(),
            service.policy.skew_secs,
        )
    };
    // `/accounts/{network}/…`: the network's segment as the request wrote it.
    let raw = uri
        .path()
        .split('/')
        .nth(2)
        .filter(|raw| *raw != network_id);
    match (verify(network_id), raw) {
        (Err(SignatureError::Wrong), Some(raw)) => verify(raw),
        (checked, _) => checked,
    }
    .map_err(|err| match err {
        SignatureError::Stale => unauthorized("the signed time is outside the allowed skew"),
        _ => unauthorized("the account signature does not check"),
    })?;
    Ok(())
}

/// Credits the account's deposits that its node reports paid, so that a read or a withdrawal
/// right after a deposit's payment counts it. A node that cannot be asked leaves them pending.
async fn credit_paid_deposits(
    service: &Arc<Service>,
    id: &AccountId,
) -> Result<(), crate::store::StoreError> {
    let pending = service
        .store
        .pending_deposits(
            Some(id),
            service.now().saturating_sub(DEPOSIT_GRACE_SECS),
            DEPOSITS_CHECKED_PER_READ,
        )
        .await?;
    for record in &pending {
        if let Err(err) = refresh_deposit(service, record).await {
            tracing::warn!(payment_hash = %record.payment_hash, ?err, "a deposit could not be checked");
            break;
        }
    }
    Ok(())
}

/// `GET /accounts/{network}/{account}`.
pub(crate) async fn balance(
    State(service): State<Arc<Service>>,
    Path((network_id, account)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<AccountBalance>, ApiError> {
    check_read_signature(&service, &headers, &uri, &network_id, &account)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "no such account");
    let network = served_network(&service, &network_id).ok_or_else(not_found)?;
    let id = AccountId {
        network,
        account: account.clone(),
    };
    // A read right after a deposit's payment already sees it credited.
    credit_paid_deposits(&service, &id)
        .await
        .map_err(|err| store_failed(&err))?;
    let balance = service
        .store
        .balance(&id, service.now())
        .await
        .map_err(|err| store_failed(&err))?
        .ok_or_else(not_found)?;
    Ok(Json(AccountBalance {
        network: network_id,
        account,
        balance: balance.balance_msat,
        held: balance.held_msat,
        available: balance.available_msat(),
    }))
}

/// `POST /accounts/withdrawals`.
pub(crate) async fn withdraw(State(service): State<Arc<Service>>, Body(body): Body) -> Response {
    match start_withdrawal(&service, &body).await {
        Ok(response) => response,
        Err(response) => response,
    }
}

async fn start_withdrawal(service: &Arc<Service>, body: &[u8]) -> Result<Response, Response> {
    let bad = |reason: &'static str, error: String| {
        service.metrics.withdrawal("refused", reason);
        refused(StatusCode::BAD_REQUEST, reason, error)
    };
    let request: WithdrawalRequest = serde_json::from_slice(body).map_err(|err| {
        bad(
            reason::INVALID_PAYLOAD,
            format!(
                "expected {{\"network\", \"account\", \"invoice\", \"maxFeeMsat\", \"signature\"}}: {err}"
            ),
        )
    })?;
    let network = served_network(service, &request.network).ok_or_else(|| {
        bad(
            reason::INVALID_NETWORK,
            format!("network {} is not served here", request.network),
        )
    })?;
    if !valid_account(&request.account) {
        return Err(bad(
            reason::INVALID_PAYLOAD,
            "account must be 66 lowercase hex characters of a public key".into(),
        ));
    }
    sign::verify(
        &sign::withdrawal_message(&request.invoice, request.max_fee_msat),
        &request.signature,
        &request.account,
    )
    .map_err(|_| {
        bad(
            reason::INVALID_SIGNATURE,
            "the signature is not the account's over `x402-lightning withdrawal <invoice> <maxFeeMsat>`"
                .into(),
        )
    })?;
    let decoded = decode(&request.invoice).map_err(|err| {
        bad(
            reason::INVALID_PAYLOAD,
            format!("not a BOLT11 invoice: {err}"),
        )
    })?;
    if decoded.currency != network.currency() {
        return Err(bad(
            reason::INVALID_NETWORK,
            format!("the invoice is not of {}", request.network),
        ));
    }
    let Some(amount_msat) = decoded.amount_msat.filter(|amount| *amount > 0) else {
        return Err(bad(
            reason::INVOICE_AMOUNT,
            "the invoice names no amount".into(),
        ));
    };
    let node_id = service
        .node
        .node_id()
        .await
        .map_err(|err| node_failed(&err).into_response())?;
    if decoded.payee == node_id {
        return Err(bad(
            reason::INVOICE_PAYEE,
            "the invoice is the facilitator's own: deposits and payments stay inside the books"
                .into(),
        ));
    }
    if decoded.end() <= service.now() {
        return Err(bad(
            reason::PAYMENT_EXPIRED,
            "the invoice has expired".into(),
        ));
    }
    if amount_msat
        .checked_add(request.max_fee_msat)
        .is_none_or(|total| total > MAX_AMOUNT_MSAT)
    {
        return Err(bad(
            reason::INVALID_PAYLOAD,
            "maxFeeMsat is too large".into(),
        ));
    }
    let record = WithdrawalRecord {
        payment_hash: decoded.payment_hash_hex(),
        account: AccountId {
            network,
            account: request.account.clone(),
        },
        invoice: request.invoice.clone(),
        amount_msat,
        max_fee_msat: request.max_fee_msat,
        state: WithdrawalState::Pending,
        fee_msat: 0,
        preimage: None,
        reason: None,
        updated_at: service.now(),
    };
    // A deposit paid a moment ago counts toward what the account may withdraw.
    credit_paid_deposits(service, &record.account)
        .await
        .map_err(|err| store_failed(&err).into_response())?;
    let started = service
        .store
        .start_withdrawal(&record, service.now())
        .await
        .map_err(|err| store_failed(&err).into_response())?;
    match started {
        WithdrawalStart::Started => {}
        WithdrawalStart::AlreadyPaid => {
            return Err(bad(
                reason::DUPLICATE_SETTLEMENT,
                "this invoice was already paid by a withdrawal".into(),
            ));
        }
        WithdrawalStart::InFlight => {
            service.metrics.withdrawal("refused", "in_flight");
            return Err(refused(
                StatusCode::CONFLICT,
                "withdrawal_in_flight",
                "a withdrawal of this invoice is in flight: read its state",
            ));
        }
        WithdrawalStart::InsufficientFunds => {
            return Err(bad(
                reason::INSUFFICIENT_FUNDS,
                "the available balance does not cover the amount and maxFeeMsat".into(),
            ));
        }
    }
    tracing::info!(payment_hash = %record.payment_hash, account = %record.account.account, amount_msat, max_fee_msat = record.max_fee_msat, "withdrawal started");
    // The payment runs in its own task: a client hanging up cannot cut it off halfway.
    let task = {
        let service = service.clone();
        let record = record.clone();
        tokio::spawn(async move { pay_withdrawal(&service, &record).await })
    };
    let answer = task.await.unwrap_or(None);
    Ok(match answer {
        Some(record) => withdrawal_response(&record),
        None => withdrawal_response(&record),
    })
}

/// Pays a started withdrawal and ends it with the node's outcome; an undecided one is left
/// pending, tracked in the background. Returns the record as it stands.
async fn pay_withdrawal(
    service: &Arc<Service>,
    record: &WithdrawalRecord,
) -> Option<WithdrawalRecord> {
    let request = PaymentRequest {
        invoice: &record.invoice,
        max_fee_msat: record.max_fee_msat,
        timeout_secs: PAYMENT_TIMEOUT_SECS,
    };
    let status = match service
        .node
        .send_payment(request, service.withdrawal_wait)
        .await
    {
        Ok(status) => Some(status),
        Err(err) => {
            // The node refused or failed to answer: whether it started paying is its to say.
            // A payment it does not know yet is not failed here: the request may still reach
            // it. The tracker fails it once that can no longer happen.
            tracing::warn!(payment_hash = %record.payment_hash, %err, "sending a withdrawal failed; asking the node");
            let hash = parse_payment_hash(&record.payment_hash)?;
            match service.node.track_payment(&hash, Duration::ZERO).await {
                // Only a success is this attempt's for sure (a failure may be an earlier
                // attempt's): anything else is left to the tracker.
                Ok(Some(succeeded @ PaymentStatus::Succeeded { .. })) => Some(succeeded),
                Ok(_) => None,
                Err(err) => {
                    tracing::warn!(payment_hash = %record.payment_hash, %err, "the node cannot say; the withdrawal stays pending");
                    None
                }
            }
        }
    };
    match status {
        Some(PaymentStatus::InFlight) | None => {
            service.metrics.withdrawal("pending", "none");
            spawn_tracker(service.clone(), record.payment_hash.clone());
            None
        }
        Some(status) => end(service, record, status).await,
    }
}

/// Records a decided payment's outcome (once); `None` when it is not decided or not
/// recordable now (it stays pending).
async fn end(
    service: &Service,
    record: &WithdrawalRecord,
    status: PaymentStatus,
) -> Option<WithdrawalRecord> {
    let end = match status {
        PaymentStatus::InFlight => return None,
        PaymentStatus::Succeeded { preimage, fee_msat } => {
            let paid_by = sha256::Hash::hash(&preimage)
                .to_byte_array()
                .to_lower_hex_string();
            if paid_by != record.payment_hash {
                tracing::error!(payment_hash = %record.payment_hash, "the node reported a wrong preimage: the withdrawal stays pending");
                return None;
            }
            WithdrawalEnd::Succeeded {
                fee_msat,
                preimage: preimage.to_lower_hex_string(),
            }
        }
        PaymentStatus::Failed { reason } => WithdrawalEnd::Failed { reason },
    };
    match service
        .store
        .end_withdrawal(&record.payment_hash, &end, service.now())
        .await
    {
        Ok(ended) => {
            if let (Some(ended), WithdrawalEnd::Succeeded { .. }) = (&ended, &end)
                && ended.state == WithdrawalState::Failed
            {
                // Never expected: every path above records a failure only once it is sure.
                tracing::error!(
                    payment_hash = %ended.payment_hash,
                    account = %ended.account.account,
                    amount_msat = ended.amount_msat,
                    "a withdrawal recorded as failed was paid by the node: its amount is not debited, reconcile it by hand"
                );
                service.metrics.withdrawal("error", "paid_after_failed");
            }
            if let Some(ended) = &ended {
                let outcome = match ended.state {
                    WithdrawalState::Succeeded => "succeeded",
                    WithdrawalState::Failed => "failed",
                    WithdrawalState::Pending => "pending",
                };
                tracing::info!(payment_hash = %ended.payment_hash, outcome, fee_msat = ended.fee_msat, "withdrawal ended");
                service.metrics.withdrawal(outcome, "none");
            }
            ended
        }
        Err(err) => {
            tracing::error!(payment_hash = %record.payment_hash, %err, "cannot record a withdrawal's outcome: it stays pending");
            service.metrics.withdrawal("error", "store_unavailable");
            None
        }
    }
}

/// Tracks a pending withdrawal until the node decides it (in the background).
pub(crate) fn spawn_tracker(service: Arc<Service>, payment_hash: String) {
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            match resolve(&service, &payment_hash, Duration::from_secs(30)).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(err) => tracing::warn!(%payment_hash, %err, "tracking a withdrawal"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(60));
        }
    });
}

/// Asks the node about a pending withdrawal and records its outcome once decided. `Ok(true)`
/// once it is no longer pending. A success is recorded at once; a failure, or a payment the
/// node never started (it is safe to try again), only once the withdrawal is stale: unchanged
/// for longer than a sender takes to reach the node, so that its sender is surely gone (a
/// crash, a stopped instance) or done, and what the node says is this attempt's, not an earlier
/// failed one's.
pub(crate) async fn resolve(
    service: &Service,
    payment_hash: &str,
    wait: Duration,
) -> Result<bool, String> {
    let Some(record) = service
        .store
        .withdrawal(payment_hash)
        .await
        .map_err(|err| err.to_string())?
    else {
        return Ok(true);
    };
    if record.state != WithdrawalState::Pending {
        return Ok(true);
    }
    let hash = parse_payment_hash(payment_hash).ok_or("a malformed payment hash")?;
    let stale = record
        .updated_at
        .saturating_add(service.stale_withdrawal_secs)
        <= service.now();
    let status = match service
        .node
        .track_payment(&hash, wait)
        .await
        .map_err(|err| err.to_string())?
    {
        // A success is final for the payment hash, whichever attempt it was.
        Some(succeeded @ PaymentStatus::Succeeded { .. }) => succeeded,
        // A failure may be an earlier attempt's (a failed withdrawal tried again) until this
        // attempt has had the time to reach the node.
        Some(failed @ PaymentStatus::Failed { .. }) if stale => failed,
        None if stale => PaymentStatus::Failed {
            reason: "the node never started this payment".to_owned(),
        },
        Some(_) | None => return Ok(false),
    };
    Ok(end(service, &record, status)
        .await
        .is_some_and(|ended| ended.state != WithdrawalState::Pending))
}

/// `GET /accounts/{network}/{account}/withdrawals/{paymentHash}`.
pub(crate) async fn withdrawal_status(
    State(service): State<Arc<Service>>,
    Path((network_id, account, payment_hash)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_read_signature(&service, &headers, &uri, &network_id, &account)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "no such withdrawal of this account");
    let network = served_network(&service, &network_id).ok_or_else(not_found)?;
    parse_payment_hash(&payment_hash).ok_or_else(not_found)?;
    let record = service
        .store
        .withdrawal(&payment_hash)
        .await
        .map_err(|err| store_failed(&err))?
        .filter(|record| record.account.network == network && record.account.account == account)
        .ok_or_else(not_found)?;
    Ok(withdrawal_response(&record))
}

/// A withdrawal's answer: 200 decided, 202 pending.
fn withdrawal_response(record: &WithdrawalRecord) -> Response {
    let (status, state) = match record.state {
        WithdrawalState::Pending => (StatusCode::ACCEPTED, WireWithdrawalState::Pending),
        WithdrawalState::Succeeded => (StatusCode::OK, WireWithdrawalState::Succeeded),
        WithdrawalState::Failed => (StatusCode::OK, WireWithdrawalState::Failed),
    };
    let mut response = (
        status,
        Json(Withdrawal {
            payment_hash: record.payment_hash.clone(),
            state,
            amount: record.amount_msat,
            fee_msat: record.fee_msat,
            preimage: record.preimage.clone(),
            reason: record.reason.clone(),
        }),
    )
        .into_response();
    super::no_store(&mut response);
    response
}
