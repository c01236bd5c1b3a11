//! [`Account`]: the seed flow's payer. Its key signs the authorizations of `X-PAYMENT` (the
//! facilitator pays the invoice from the account's prepaid balance), and it calls the
//! facilitator service's account routes (the [wire contract](crate::protocol), Part 3): deposits, the signed balance
//! read, withdrawals.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::body::{ReadError, read_limited};
use crate::clock::{Clock, SystemClock};
use crate::v1::AccountKey;
use crate::v1::accounts::{AccountBalance, DepositInvoice, DepositStatus, Withdrawal};
use crate::v1::sign::ACCOUNT_SIGNATURE_HEADER;

/// The demo's facilitator service (its embedded one).
pub const DEFAULT_FACILITATOR_URL: &str = "http://127.0.0.1:4021";

/// The largest facilitator answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// An account at a facilitator service: its key and the service's base URL.
#[derive(Clone)]
pub struct Account {
    key: AccountKey,
    facilitator: String,
    http: reqwest::Client,
}

/// An account call that did not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The facilitator could not be reached, or timed out.
    #[error("cannot reach the facilitator at {url}: {detail}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The facilitator refused: its status, `error` and `reason` (e.g. `insufficient_funds`,
    /// `duplicate_settlement`).
    #[error("the facilitator answered {status}: {error}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its JSON `error`, or the start of its body.
        error: String,
        /// Its JSON `reason`, when it gave one.
        reason: Option<String>,
    },
    /// The facilitator answered something that is not the documented shape.
    #[error("the facilitator answered garbage: {0}")]
    Garbage(String),
    /// The base URL is not an absolute `http(s)` URL.
    #[error("not an http(s) facilitator URL: {0:?}")]
    Url(String),
}

impl Account {
    /// The account of `key` at the facilitator service at `facilitator` (its base URL), with a
    /// 30 s call timeout.
    ///
    /// # Errors
    ///
    /// [`AccountError::Url`] when `facilitator` is not an absolute `http(s)` URL.
    pub fn new(key: AccountKey, facilitator: &str) -> Result<Self, AccountError> {
        let url = reqwest::Url::parse(facilitator)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| AccountError::Url(facilitator.to_owned()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| AccountError::Unreachable {
                url: facilitator.to_owned(),
                detail: format!("no HTTP client: {err}"),
            })?;
        Ok(Self {
            key,
            facilitator: url.as_str().trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The key that signs for the account.
    pub fn key(&self) -> &AccountKey {
        &self.key
    }

    /// The account: its compressed public key, 66 lowercase hex.
    pub fn id(&self) -> String {
        self.key.account()
    }

    /// The facilitator service's base URL.
    pub fn facilitator(&self) -> &str {
        &self.facilitator
    }

    /// `POST /accounts/deposits`: an invoice of the facilitator's node that credits `amount_msat`
    /// to this account on `network` (either id form) once paid.
    ///
    /// # Errors
    ///
    /// [`AccountError`]; a refusal is 400 (a bad network or amount) or 429 (too many unpaid
    /// deposits).
    pub async fn deposit(
        &self,
        network: &str,
        amount_msat: u64,
    ) -> Result<DepositInvoice, AccountError> {
        let body = json!({
            "network": network,
            "account": self.id(),
            "amount": amount_msat.to_string(),
        });
        let url = format!("{}/accounts/deposits", self.facilitator);
        self.call(
            self.http.post(&url).json(&body),
            &url,
            &[StatusCode::CREATED],
        )
        .await
    }

    /// `GET /accounts/deposits/{paymentHash}`: where a deposit stands (`pending`, `credited`,
    /// `expired`). The service checks its node on this read, so a paid deposit reads `credited`.
    ///
    /// # Errors
    ///
    /// [`AccountError`]; 404 for an unknown deposit.
    pub async fn deposit_status(&self, payment_hash: &str) -> Result<DepositStatus, AccountError> {
        let url = format!(
            "{}/accounts/deposits/{}",
            self.facilitator,
            path_segment(payment_hash)
        );
        self.call(self.http.get(&url), &url, &[StatusCode::OK])
            .await
    }

    /// The signed read `GET /accounts/{network}/{account}`: balance, held and available msat.
    ///
    /// # Errors
    ///
    /// [`AccountError`]; 404 when the account has never been credited on `network`.
    pub async fn balance(&self, network: &str) -> Result<AccountBalance, AccountError> {
        self.signed_read(network, "").await
    }

    /// `POST /accounts/withdrawals`: the facilitator's node pays `invoice` (of another node) from
    /// this account on `network`, with at most `max_fee_msat` of routing fees. The answer's
    /// `state` is `succeeded` (with the preimage), `failed` (nothing debited; the invoice may be
    /// tried again) or `pending` (202: read it later with [`withdrawal`](Self::withdrawal)).
    ///
    /// # Errors
    ///
    /// [`AccountError`]; refusals are 400 (`insufficient_funds`, `duplicate_settlement`, an
    /// invoice of the facilitator's own node, of another network, expired) and 409 (the same
    /// invoice is in flight).
    pub async fn withdraw(
        &self,
        network: &str,
        invoice: &str,
        max_fee_msat: u64,
    ) -> Result<Withdrawal, AccountError> {
        let body = json!({
            "network": network,
            "account": self.id(),
            "invoice": invoice,
            "maxFeeMsat": max_fee_msat.to_string(),
            "signature": self.key.sign_withdrawal(invoice, max_fee_msat),
        });
        let url = format!("{}/accounts/withdrawals", self.facilitator);
        self.call(
            self.http.post(&url).json(&body),
            &url,
            &[StatusCode::OK, StatusCode::ACCEPTED],
        )
        .await
    }

    /// The signed read `GET /accounts/{network}/{account}/withdrawals/{paymentHash}`.
    ///
    /// # Errors
    ///
    /// [`AccountError`]; 404 for a withdrawal this account never made.
    pub async fn withdrawal(
        &self,
        network: &str,
        payment_hash: &str,
    ) -> Result<Withdrawal, AccountError> {
        let below = format!("/withdrawals/{}", path_segment(payment_hash));
        self.signed_read(network, &below).await
    }

    /// A signed `GET /accounts/{network}/{account}{below}` (the account read's signature, at
    /// this moment).
    async fn signed_read<T: DeserializeOwned>(
        &self,
        network: &str,
        below: &str,
    ) -> Result<T, AccountError> {
        let url = format!(
            "{}/accounts/{}/{}{below}",
            self.facilitator,
            path_segment(network),
            self.id()
        );
        let signature = self
            .key
            .account_read_signature(network, SystemClock.unix_now().as_secs());
        let request = self
            .http
            .get(&url)
            .header(ACCOUNT_SIGNATURE_HEADER, signature);
        self.call(request, &url, &[StatusCode::OK]).await
    }

    /// Sends `request`; an answer with one of `expected` statuses is parsed as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        expected: &[StatusCode],
    ) -> Result<T, AccountError> {
        let unreachable = |err: reqwest::Error| AccountError::Unreachable {
            url: url.to_owned(),
            detail: err.to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = read_limited(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|err| match err {
                ReadError::Transport(err) => unreachable(err),
                ReadError::TooLarge(limit) => AccountError::Garbage(ReadError::too_large(limit)),
            })?;
        if !expected.contains(&status) {
            let json: Option<Value> = serde_json::from_slice(&body).ok();
            let error = json
                .as_ref()
                .and_then(|json| json["error"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            let reason = json
                .as_ref()
                .and_then(|json| json["reason"].as_str())
                .map(str::to_owned);
            return Err(AccountError::Refused {
                status: status.as_u16(),
                error,
                reason,
            });
        }
        serde_json::from_slice(&body).map_err(|err| AccountError::Garbage(err.to_string()))
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("account", &self.id())
            .field("facilitator", &self.facilitator)
            .finish_non_exhaustive()
    }
}

/// A path segment: characters outside `A-Za-z0-9-._~:` percent-encoded, so a caller's string
/// cannot add path segments or a query.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
