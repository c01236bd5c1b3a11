//! [`SimWallet`]: pays through the `POST /pay` of a simulated Lightning network: the facilitator
//! service's simulated node (the demo's, `http://127.0.0.1:4021/pay`) or the mock
//! facilitator's. No money moves; the receiver releases the preimage of an invoice it minted.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::{PaymentOutcome, Wallet, WalletError, WalletFuture, check_preimage, millis};
use crate::client::body::{ReadError, read_limited};
use crate::lnbtc::invoice::{decode, decode_lower_hex};

/// The demo's simulated node: its embedded facilitator service's `/pay`.
pub const DEFAULT_SIM_PAY_URL: &str = "http://127.0.0.1:4021/pay";

/// How long one `/pay` call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest `/pay` answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Pays an invoice with `POST {url} {"invoice": "<bolt11>"}`, answered
/// `{"preimage", "paymentHash", "amountMsat"}` (200), or a JSON `{"error"}` with 404 (an invoice
/// the simulated network does not know), 410 (expired), 409 (already paid or cancelled) or 403
/// (mainnet): each of those is [`PaymentOutcome::Failed`]. The simulated network charges no
/// routing fee for its own invoices. Any other status is a [`WalletError`].
#[derive(Clone)]
pub struct SimWallet {
    url: String,
    http: reqwest::Client,
}

impl SimWallet {
    /// A wallet paying through `url` (the whole `/pay` URL), with a 10 s call timeout.
    ///
    /// # Errors
    ///
    /// [`WalletError::Refused`] when `url` is not an absolute `http(s)` URL.
    pub fn new(url: &str) -> Result<Self, WalletError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|err| WalletError::Refused(format!("not a URL: {url:?}: {err}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(WalletError::Refused(format!("not an http(s) URL: {url:?}")));
        }
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| WalletError::Refused(format!("no HTTP client: {err}")))?;
        Ok(Self {
            url: parsed.to_string(),
            http,
        })
    }

    /// The `/pay` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn pay_now(&self, invoice: &str) -> Result<PaymentOutcome, WalletError> {
        let decoded = decode(invoice)
            .map_err(|err| WalletError::Refused(format!("not a BOLT11 invoice: {err}")))?;
        let response = self
            .http
            .post(&self.url)
            .json(&serde_json::json!({ "invoice": invoice }))
            .send()
            .await
            .map_err(|err| transport_error(&err))?;
        let status = response.status();
        let body = read_capped(response).await?;
        match status.as_u16() {
            200 => {}
            403 | 404 | 409 | 410 => {
                return Ok(PaymentOutcome::Failed {
                    reason: error_text(&body).unwrap_or_else(|| status.to_string()),
                });
            }
            _ => {
                return Err(WalletError::Status {
                    status: status.as_u16(),
                    message: error_text(&body).unwrap_or_default(),
                });
            }
        }
        #[derive(Deserialize)]
        struct Paid {
            preimage: String,
        }
        let paid: Paid = serde_json::from_slice(&body)
            .map_err(|err| WalletError::Garbage(format!("not a /pay answer: {err}")))?;
        let preimage = decode_lower_hex::<32>(&paid.preimage)
            .map_err(|_| WalletError::Garbage("the preimage is not 64 lowercase hex".into()))?;
        check_preimage(&preimage, &decoded.payment_hash)?;
        Ok(PaymentOutcome::Paid {
            preimage,
            fee_msat: 0,
        })
    }
}

impl fmt::Debug for SimWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimWallet").field("url", &self.url).finish()
    }
}

impl Wallet for SimWallet {
    fn pay<'a>(&'a self, invoice: &'a str, _max_fee_msat: u64) -> WalletFuture<'a, PaymentOutcome> {
        Box::pin(self.pay_now(invoice))
    }

    /// The simulated network decides at once and keeps no payment record to ask: always `None`
    /// (a payment whose `/pay` call failed stays unknown; the client does not pay it again).
    fn track<'a>(
        &'a self,
        _payment_hash: &'a [u8; 32],
    ) -> WalletFuture<'a, Option<PaymentOutcome>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// A transport failure as a wallet error.
fn transport_error(err: &reqwest::Error) -> WalletError {
    if err.is_timeout() {
        WalletError::Timeout(millis(CALL_TIMEOUT))
    } else {
        WalletError::Unreachable(err.to_string())
    }
}

/// Reads at most [`MAX_ANSWER_BYTES`] of a body.
async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, WalletError> {
    read_limited(response, MAX_ANSWER_BYTES)
        .await
        .map_err(|err| match err {
            ReadError::Transport(err) => transport_error(&err),
            ReadError::TooLarge(limit) => WalletError::Garbage(ReadError::too_large(limit)),
        })
}

/// The `error` of a JSON error body.
fn error_text(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["error"]
        .as_str()
        .map(|text| text.chars().take(200).collect())
}
