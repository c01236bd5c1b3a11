//! [`Payer`]: the `reqwest-middleware` middleware that answers a 402 by paying and sending the
//! request once more with the proof.
//!
//! The request path, in order: send; on 402 read the challenge ([`Challenge::read`]); choose an
//! offer and check it ([`offer`](super::offer)); check the budget; reserve; pay (wallet, or sign
//! with the account); send again with the proof, again with the **same** proof after a
//! transport failure; read the settlement into a [`Receipt`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::{Extensions, HeaderValue, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use serde_json::Value;

use super::account::Account;
use super::body::read_limited;
use super::budget::{Budget, Reservation, Spending};
use super::offer::{
    Challenge, Flow, MAX_CHALLENGE_BYTES, NO_OFFER, Offer, REDIRECTED, Terms, Unpayable,
    choose_lnbtc, choose_v1, hex,
};
use super::receipt::{PayError, Proof, Receipt, Settlement};
use super::wallet::{PaymentOutcome, Wallet, WalletError};
use crate::clock::{Clock, SystemClock};
use crate::header::{PAYMENT_SIGNATURE, X_PAYMENT, X_PAYMENT_RESPONSE};
use crate::lnbtc::client::{ClientPolicy, IntendedRequest, PayerResult, PayerStatus, Selected};
use crate::lnbtc::header::{PAYMENT_RESPONSE, encode_payment_signature};
use crate::network::Network;
use crate::v1::types::PaymentRequirements as V1Requirements;

/// Tries of a paid request (the first included) when the transport fails.
pub const DEFAULT_DELIVERY_ATTEMPTS: u32 = 3;

/// The wait before the second try of a paid request; doubled for each next one.
pub const DEFAULT_DELIVERY_BACKOFF: Duration = Duration::from_millis(250);

/// What the payer is doing, for progress displays (the CLI's spinner) and logs.
#[derive(Debug)]
#[non_exhaustive]
pub enum PayEvent<'a> {
    /// A 402's offer passed its checks and the budget: about to pay it.
    Paying {
        /// The offer.
        offer: &'a Offer,
        /// The routing-fee cap, msat.
        max_fee_msat: u64,
    },
    /// The wallet paid (lnbtc), or the account signed (v1).
    Paid {
        /// The offer.
        offer: &'a Offer,
        /// The routing fee paid, msat.
        fee_msat: u64,
    },
    /// Sending the request with its proof; `attempt` counts from 1.
    Delivering {
        /// Which try.
        attempt: u32,
    },
}

type Observer = Arc<dyn Fn(&PayEvent<'_>) + Send + Sync>;

/// Pays a 402 in the `lnbtc` flow (a [`Wallet`]) or in the seed flow (an [`Account`]), within a
/// [`Budget`], then sends the request again with the proof. Cheap to clone; clones share the
/// budget's spending and the memory of payments.
///
/// Never pays twice for one challenge: an invoice being paid, paid, or whose payment's outcome
/// is unknown (in flight, a wallet error) is never handed to the wallet again by this payer; a
/// paid request that the transport loses is sent again with the same proof; a proof the server
/// refuses is reported ([`PayError::Refused`]), not paid again.
///
/// ```no_run
/// use x402_lightning::client::{Budget, Payer, Receipt, wallet::SimWallet};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let payer = Payer::builder()
///     .wallet(SimWallet::new("http://127.0.0.1:4021/pay")?)
///     .budget(Budget::default().max_per_payment_msat(20_000))
///     .build()?;
/// let http = reqwest::Client::builder()
///     .redirect(reqwest::redirect::Policy::none())
///     .build()?;
/// let response = payer.client(http).get("http://127.0.0.1:3000/weather").send().await?;
/// if let Some(receipt) = response.extensions().get::<Receipt>() {
///     eprintln!("paid {} msat (+{} fee)", receipt.amount_msat, receipt.fee_msat);
/// }
/// println!("{}", response.text().await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Payer {
    inner: Arc<Inner>,
}

struct Inner {
    wallet: Option<Arc<dyn Wallet>>,
    account: Option<Account>,
    prefer: Flow,
    budget: Budget,
    spending: Spending,
    policy: ClientPolicy,
    clock: Arc<dyn Clock>,
    attempts: u32,
    backoff: Duration,
    observer: Option<Observer>,
    memory: Mutex<Memory>,
}

/// The payments this payer knows of, by payment hash.
#[derive(Default)]
struct Memory {
    /// Being paid right now.
    paying: HashSet<[u8; 32]>,
    /// Paid (lnbtc): the proof, until the invoice expires.
    paid: HashMap<[u8; 32], (Proof, u64)>,
    /// In flight or unknown: never paid again; asked of the wallet instead. With the invoice's
    /// expiry and the budget's reservation, which stands until the outcome is known.
    unresolved: HashMap<[u8; 32], (u64, Reservation)>,
}

impl Memory {
    /// Forgets what cannot come back: invoices expired an hour ago.
    fn prune(&mut self, now: u64) {
        let keep = |expires_at: u64| expires_at.saturating_add(3_600) > now;
        self.paid.retain(|_, (_, expires_at)| keep(*expires_at));
        self.unresolved
            .retain(|_, (expires_at, _)| keep(*expires_at));
    }
}

/// Builds a [`Payer`].
#[must_use]
pub struct PayerBuilder {
    wallet: Option<Arc<dyn Wallet>>,
    account: Option<Account>,
    prefer: Option<Flow>,
    budget: Budget,
    policy: ClientPolicy,
    clock: Arc<dyn Clock>,
    attempts: u32,
    backoff: Duration,
    observer: Option<Observer>,
}

/// A payer that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayerError {
    /// Neither a wallet nor an account: nothing to pay with.
    #[error("a payer needs a wallet (lnbtc) or an account (the seed flow)")]
    NothingToPayWith,
    /// The preferred flow has nothing to pay with.
    #[error("the preferred flow {0} has nothing to pay with")]
    PreferredFlowUnavailable(Flow),
}

impl PayerBuilder {
    /// Pays `lnbtc` offers (x402 v2) with `wallet`.
    pub fn wallet(mut self, wallet: impl Wallet) -> Self {
        self.wallet = Some(Arc::new(wallet));
        self
    }

    /// Pays `lnbtc` offers with a shared wallet.
    pub fn shared_wallet(mut self, wallet: Arc<dyn Wallet>) -> Self {
        self.wallet = Some(wallet);
        self
    }

    /// Pays seed-flow offers (x402 v1) from `account`.
    pub fn account(mut self, account: Account) -> Self {
        self.account = Some(account);
        self
    }

    /// The flow tried first when the server offers both and the payer can pay both (default:
    /// `lnbtc` when a wallet is set).
    pub fn prefer(mut self, flow: Flow) -> Self {
        self.prefer = Some(flow);
        self
    }

    /// The spend limits (default: none but the routing-fee cap).
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Also pays on `network` (default: upstream's mainnet and testnet; signet and regtest are
    /// opt-in).
    pub fn allow_network(mut self, network: Network) -> Self {
        self.policy = self.policy.allow(network);
        self
    }

    /// The clock-skew allowance for invoice creation times, seconds (default 60).
    pub fn skew_secs(mut self, skew_secs: u64) -> Self {
        self.policy.skew_secs = skew_secs;
        self
    }

    /// The clock for expiry checks and the budget's period (tests inject a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many times a paid request is sent (at least 1) and the first wait between tries
    /// (doubled each time): defaults [`DEFAULT_DELIVERY_ATTEMPTS`], [`DEFAULT_DELIVERY_BACKOFF`].
    pub fn delivery(mut self, attempts: u32, backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// Calls `observer` at each step of a payment ([`PayEvent`]).
    pub fn on_event(mut self, observer: impl Fn(&PayEvent<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The payer.
    ///
    /// # Errors
    ///
    /// [`PayerError`] when there is nothing to pay with, or nothing for the preferred flow.
    pub fn build(self) -> Result<Payer, PayerError> {
        let prefer = match (self.prefer, &self.wallet, &self.account) {
            (_, None, None) => return Err(PayerError::NothingToPayWith),
            (Some(Flow::Lnbtc), None, _) => {
                return Err(PayerError::PreferredFlowUnavailable(Flow::Lnbtc));
            }
            (Some(Flow::V1), _, None) => {
                return Err(PayerError::PreferredFlowUnavailable(Flow::V1));
            }
            (Some(flow), _, _) => flow,
            (None, Some(_), _) => Flow::Lnbtc,
            (None, None, Some(_)) => Flow::V1,
        };
        let spending = Spending::with_clock(Arc::clone(&self.clock));
        Ok(Payer {
            inner: Arc::new(Inner {
                wallet: self.wallet,
                account: self.account,
                prefer,
                budget: self.budget,
                spending,
                policy: self.policy,
                clock: self.clock,
                attempts: self.attempts,
                backoff: self.backoff,
                observer: self.observer,
                memory: Mutex::default(),
            }),
        })
    }
}

/// An offer the payer would pay, and with what fee cap: what `--dry-run` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The offer, checked.
    pub offer: Offer,
    /// The routing-fee cap, msat (0 in the seed flow).
    pub max_fee_msat: u64,
}

impl Payer {
    /// A builder: give it a wallet or an account, then a budget.
    pub fn builder() -> PayerBuilder {
        PayerBuilder {
            wallet: None,
            account: None,
            prefer: None,
            budget: Budget::default(),
            policy: ClientPolicy::default(),
            clock: Arc::new(SystemClock),
            attempts: DEFAULT_DELIVERY_ATTEMPTS,
            backoff: DEFAULT_DELIVERY_BACKOFF,
            observer: None,
        }
    }

    /// `client` with this payer as its middleware.
    ///
    /// Give it a client that follows no redirect
    /// (`reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())`): reqwest's
    /// default follows ten, and a paid request answered with a redirect would carry its proof
    /// header to the next URL (reqwest drops only `Authorization` and `Cookie` across origins).
    /// A 402 reached through a redirect is never paid ([`REDIRECTED`]).
    pub fn client(&self, client: reqwest::Client) -> ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(client)
            .with(self.clone())
            .build()
    }

    /// What the payer would pay for `request`, given the server's 402 `response` to it: the
    /// offer it would choose and the fee cap, after every check and the budget. Nothing is paid
    /// or reserved.
    ///
    /// # Errors
    ///
    /// [`PayError::Unpayable`], [`PayError::Budget`].
    pub async fn quote(&self, request: &Request, response: Response) -> Result<Quote, PayError> {
        if response.url() != request.url() {
            return Err(PayError::Unpayable(redirected(response.url())));
        }
        let challenge = read_challenge(response).await;
        let (offer, max_fee_msat) = self.choose(request, &challenge)?;
        let reservation = self
            .inner
            .spending
            .reserve(&self.inner.budget, offer.amount_msat, max_fee_msat)
            .map_err(PayError::Budget)?;
        self.inner.spending.release(reservation);
        Ok(Quote {
            offer,
            max_fee_msat,
        })
    }

    fn emit(&self, event: &PayEvent<'_>) {
        if let Some(observer) = &self.inner.observer {
            observer(event);
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // Sets of hashes: a panic elsewhere cannot leave them half-written.
        self.inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        self.inner.clock.unix_now().as_secs()
    }

    /// The offer to pay for `request`, by the preferred flow first, and its fee cap; the
    /// origin and the maximum per payment are checked here.
    fn choose(&self, request: &Request, challenge: &Challenge) -> Result<(Offer, u64), PayError> {
        let inner = &self.inner;
        let header_lines: Vec<(&str, &[u8])> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        let intended = IntendedRequest::Http {
            method: request.method().as_str(),
            url: request.url().as_str(),
            body: request
                .body()
                .and_then(reqwest::Body::as_bytes)
                .unwrap_or_default(),
            header_lines: &header_lines,
        };
        let now = self.now();
        let order = match inner.prefer {
            Flow::Lnbtc => [Flow::Lnbtc, Flow::V1],
            Flow::V1 => [Flow::V1, Flow::Lnbtc],
        };
        let mut first_error: Option<Unpayable> = None;
        for flow in order {
            let chosen = match flow {
                Flow::Lnbtc if inner.wallet.is_some() => {
                    choose_lnbtc(challenge, &intended, &inner.policy, now)
                }
                Flow::V1 if inner.account.is_some() => choose_v1(challenge, &inner.policy, now),
                _ => continue,
            };
            match chosen {
                Ok(offer) => {
                    inner
                        .budget
                        .check_offer(request.url().as_str(), offer.amount_msat)
                        .map_err(PayError::Budget)?;
                    let max_fee_msat = match flow {
                        Flow::Lnbtc => inner.budget.fee_limit_msat(offer.amount_msat),
                        Flow::V1 => 0,
                    };
                    return Ok((offer, max_fee_msat));
                }
                // A flow the server does not offer does not hide why the other was refused.
                Err(err) if err.reason == NO_OFFER => {
                    first_error.get_or_insert(err);
                }
                Err(err) => {
                    if first_error
                        .as_ref()
                        .is_none_or(|first| first.reason == NO_OFFER)
                    {
                        first_error = Some(err);
                    }
                }
            }
        }
        Err(PayError::Unpayable(first_error.unwrap_or(Unpayable {
            flow: None,
            reason: NO_OFFER,
            detail: "the 402 offers nothing this client can pay".into(),
        })))
    }

    /// Pays `offer` (or finds it paid already) and returns its proof and the fee paid. The
    /// budget counts the payment from here on: a proof that leaves this client can be spent by
    /// whoever receives it, whatever the server then answers.
    async fn pay(&self, offer: &Offer, max_fee_msat: u64) -> Result<(Proof, u64), PayError> {
        let hash = offer.payment_hash;
        let now = self.now();
        let unresolved = {
            let mut memory = self.memory();
            memory.prune(now);
            if let Some((proof, _)) = memory.paid.get(&hash) {
                // Paid before, by this payer: send the same proof, never pay again.
                return Ok((proof.clone(), 0));
            }
            if !memory.paying.insert(hash) {
                return Err(PayError::AlreadyPaying {
                    payment_hash: hex(&hash),
                });
            }
            memory
                .unresolved
                .remove(&hash)
                .map(|(_, reservation)| reservation)
        };
        let result = match &offer.terms {
            Terms::V1(requirements) => self.sign(offer, requirements),
            Terms::Lnbtc(selected) => {
                self.pay_lnbtc(offer, selected, max_fee_msat, unresolved)
                    .await
            }
        };
        let mut memory = self.memory();
        memory.paying.remove(&hash);
        if let Ok((proof, _)) = &result {
            memory.paid.insert(hash, (proof.clone(), offer.expires_at));
        }
        result
    }

    /// The seed flow: the account signs the invoice. The amount counts against the budget at
    /// once: the authorization pays the invoice for whoever brings it to the facilitator.
    fn sign(&self, offer: &Offer, requirements: &V1Requirements) -> Result<(Proof, u64), PayError> {
        let inner = &self.inner;
        let account = inner
            .account
            .as_ref()
            .ok_or(PayError::Unpayable(Unpayable {
                flow: Some(Flow::V1),
                reason: NO_OFFER,
                detail: "no account to sign with".into(),
            }))?;
        let value = account.key().payment_header(requirements).map_err(|err| {
            PayError::Unpayable(Unpayable {
                flow: Some(Flow::V1),
                reason: crate::v1::types::reason::INVALID_PAYLOAD,
                detail: err.to_string(),
            })
        })?;
        let reservation = inner
            .spending
            .reserve(&inner.budget, offer.amount_msat, 0)
            .map_err(PayError::Budget)?;
        inner.spending.settle(reservation, offer.amount_msat);
        self.emit(&PayEvent::Paying {
            offer,
            max_fee_msat: 0,
        });
        self.emit(&PayEvent::Paid { offer, fee_msat: 0 });
        Ok((
            Proof {
                header: X_PAYMENT,
                value,
            },
            0,
        ))
    }

    /// The lnbtc flow: the wallet pays the invoice, or, for a payment whose outcome was unknown
    /// (`unresolved`, with its reservation), is asked how it went; a payment that failed for good
    /// may be made again.
    async fn pay_lnbtc(
        &self,
        offer: &Offer,
        selected: &Selected,
        max_fee_msat: u64,
        unresolved: Option<Reservation>,
    ) -> Result<(Proof, u64), PayError> {
        let inner = &self.inner;
        let wallet = inner.wallet.as_ref().ok_or(PayError::Unpayable(Unpayable {
            flow: Some(Flow::Lnbtc),
            reason: NO_OFFER,
            detail: "no wallet to pay with".into(),
        }))?;
        let payment_hash = offer.payment_hash_hex();
        let pay = |reservation| async move {
            self.emit(&PayEvent::Paying {
                offer,
                max_fee_msat,
            });
            (wallet.pay(&offer.invoice, max_fee_msat).await, reservation)
        };
        let reserve = || {
            inner
                .spending
                .reserve(&inner.budget, offer.amount_msat, max_fee_msat)
                .map_err(PayError::Budget)
        };
        let (outcome, reservation) = match unresolved {
            None => pay(reserve()?).await,
            // Asked, never paid again while its outcome may still be a success.
            Some(reservation) => match wallet.track(&offer.payment_hash).await {
                Ok(Some(PaymentOutcome::Failed { .. })) => {
                    inner.spending.release(reservation);
                    pay(reserve()?).await
                }
                Ok(Some(outcome)) => (Ok(outcome), reservation),
                Ok(None) => (Ok(PaymentOutcome::InFlight), reservation),
                Err(err) => (Err(err), reservation),
            },
        };
        let unknown = |reservation| {
            self.memory()
                .unresolved
                .insert(offer.payment_hash, (offer.expires_at, reservation));
        };
        let (preimage, fee_msat) = match outcome {
            Ok(PaymentOutcome::Paid { preimage, fee_msat }) => (preimage, fee_msat),
            Ok(PaymentOutcome::Failed { reason }) => {
                inner.spending.release(reservation);
                return Err(PayError::PaymentFailed {
                    payment_hash,
                    reason: printable(&reason),
                });
            }
            Ok(PaymentOutcome::InFlight) => {
                unknown(reservation);
                return Err(PayError::InFlight { payment_hash });
            }
            Err(source) => {
                unknown(reservation);
                return Err(PayError::Wallet {
                    payment_hash,
                    source,
                });
            }
        };
        let result = PayerResult {
            status: PayerStatus::Paid,
            invoice: offer.invoice.clone(),
            payment_hash: payment_hash.clone(),
            amount_msat: offer.amount_msat,
            preimage: Some(hex(&preimage)),
        };
        let payment = match selected.clone().into_payment(&result) {
            Ok(payment) => payment,
            Err(err) => {
                // A wallet that says "paid" with a preimage that does not prove it: the money
                // may be gone, the outcome is unknown.
                unknown(reservation);
                return Err(PayError::Wallet {
                    payment_hash,
                    source: WalletError::Garbage(err.to_string()),
                });
            }
        };
        inner
            .spending
            .settle(reservation, offer.amount_msat.saturating_add(fee_msat));
        self.emit(&PayEvent::Paid { offer, fee_msat });
        let proof = Proof {
            header: PAYMENT_SIGNATURE,
            value: encode_payment_signature(&payment),
        };
        Ok((proof, fee_msat))
    }

    /// Sends `request` with `proof`, again with the same proof after a transport failure or a
    /// 409 (another request settling the same payment), and reads the settlement. A paid request
    /// that never got an answer but 409 is [`PayError::Undelivered`], with its proof.
    async fn deliver(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
        offer: &Offer,
        proof: Proof,
        fee_msat: u64,
    ) -> Result<Response, PayError> {
        let inner = &self.inner;
        let mut receipt = Receipt {
            flow: offer.flow,
            network: offer.network.clone(),
            amount_msat: offer.amount_msat,
            fee_msat,
            payment_hash: offer.payment_hash_hex(),
            url: request.url().to_string(),
            settlement: None,
        };
        let undelivered = |detail: String, receipt: Receipt, proof: Proof| PayError::Undelivered {
            detail,
            receipt: Box::new(receipt),
            proof,
        };
        let value = match HeaderValue::from_str(&proof.value) {
            Ok(value) => value,
            Err(err) => {
                let detail = format!("the proof is not a header value: {err}");
                return Err(undelivered(detail, receipt, proof));
            }
        };
        let mut wait = inner.backoff;
        let mut attempt = 1;
        let response = loop {
            self.emit(&PayEvent::Delivering { attempt });
            let Some(mut paid) = request.try_clone() else {
                return Err(PayError::BodyNotReplayable);
            };
            paid.headers_mut().insert(proof.header, value.clone());
            let last = attempt >= inner.attempts;
            let detail = match next.clone().run(paid, extensions).await {
                Ok(response) if response.status() == StatusCode::CONFLICT => {
                    "the server answered 409 (the payment is being settled) to every try".into()
                }
                Ok(response) => break response,
                Err(err) => err.to_string(),
            };
            if last {
                return Err(undelivered(detail, receipt, proof));
            }
            tracing::debug!(
                payment_hash = %receipt.payment_hash,
                attempt,
                %detail,
                "the paid request got no answer; sending it again with the same proof"
            );
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
            attempt += 1;
        };
        receipt.settlement = settlement(&response, offer.flow);
        let status = response.status();
        if status == StatusCode::PAYMENT_REQUIRED
            || (status == StatusCode::BAD_REQUEST && offer.flow == Flow::Lnbtc)
        {
            let reason = receipt
                .settlement
                .as_ref()
                .and_then(|settled| settled.error_reason.clone());
            let headers = response.headers().clone();
            let body = tokio::time::timeout(CHALLENGE_BODY_TIMEOUT, read_capped(response))
                .await
                .unwrap_or_default();
            let reason = reason
                .or_else(|| refusal_reason(&body))
                .or_else(|| Challenge::read(&headers, &body).error)
                .unwrap_or_else(|| "no reason given".into());
            return Err(PayError::Refused {
                status: status.as_u16(),
                reason: printable(&reason),
                receipt: Box::new(receipt),
            });
        }
        let mut response = response;
        response.extensions_mut().insert(receipt);
        Ok(response)
    }
}

/// Server or wallet text as it may be shown: at most 300 characters, control characters
/// replaced, so it can neither flood nor drive a terminal.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .take(300)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

impl fmt::Debug for Payer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Payer")
            .field("wallet", &inner.wallet)
            .field("account", &inner.account)
            .field("prefer", &inner.prefer)
            .field("budget", &inner.budget)
            .field("networks", &inner.policy.networks)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Middleware for Payer {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let again = request.try_clone();
        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::PAYMENT_REQUIRED {
            return Ok(response);
        }
        let Some(request) = again else {
            return Err(reqwest_middleware::Error::middleware(
                PayError::BodyNotReplayable,
            ));
        };
        if response.url() != request.url() {
            return Err(reqwest_middleware::Error::middleware(PayError::Unpayable(
                redirected(response.url()),
            )));
        }
        self.pay_and_send(request, response, extensions, next)
            .await
            .map_err(reqwest_middleware::Error::middleware)
    }
}

impl Payer {
    async fn pay_and_send(
        &self,
        request: Request,
        response: Response,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response, PayError> {
        let challenge = read_challenge(response).await;
        let (offer, max_fee_msat) = self.choose(&request, &challenge)?;
        let (proof, fee_msat) = self.pay(&offer, max_fee_msat).await?;
        self.deliver(request, extensions, next, &offer, proof, fee_msat)
            .await
    }
}

/// A 402 reached through a redirect is another URL's: paying it would pay whoever redirected
/// to it, and the paid request would go to the first URL again.
fn redirected(url: &reqwest::Url) -> Unpayable {
    Unpayable {
        flow: None,
        reason: REDIRECTED,
        detail: format!("the 402 came from {url} after a redirect: request it directly to pay it"),
    }
}

/// How long a 402's body may take to arrive before it is read as empty.
const CHALLENGE_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a 402: its headers, and at most [`MAX_CHALLENGE_BYTES`] of its body within
/// [`CHALLENGE_BODY_TIMEOUT`] (a body that stalls is read as none: the header may still do).
async fn read_challenge(response: Response) -> Challenge {
    let headers = response.headers().clone();
    let body = tokio::time::timeout(CHALLENGE_BODY_TIMEOUT, read_capped(response))
        .await
        .unwrap_or_default();
    Challenge::read(&headers, &body)
}

/// At most [`MAX_CHALLENGE_BYTES`] of a body (empty when it is longer or the transport fails).
async fn read_capped(response: Response) -> Vec<u8> {
    read_limited(response, MAX_CHALLENGE_BYTES)
        .await
        .unwrap_or_default()
}

/// The settlement header of `flow`, decoded.
fn settlement(response: &Response, flow: Flow) -> Option<Settlement> {
    match flow {
        Flow::Lnbtc => {
            let value = response.headers().get(PAYMENT_RESPONSE)?;
            let settled = crate::lnbtc::header::decode_payment_response(
                value.as_bytes(),
                MAX_CHALLENGE_BYTES,
            )
            .ok()?;
            Some(Settlement {
                success: settled.success,
                transaction: settled.transaction,
                network: settled.network,
                payer: settled.payer,
                error_reason: settled.error_reason,
            })
        }
        Flow::V1 => {
            let value = response.headers().get(X_PAYMENT_RESPONSE)?;
            let settled = crate::header::decode_payment_response_header(
                value.as_bytes(),
                MAX_CHALLENGE_BYTES,
            )
            .ok()?;
            Some(Settlement {
                success: settled.success,
                transaction: settled.transaction,
                network: settled.network.as_str().to_owned(),
                payer: settled.payer,
                error_reason: settled.error_reason,
            })
        }
    }
}

/// A refusal's reason from its JSON body: `reason`, else `error`.
fn refusal_reason(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    json["reason"]
        .as_str()
        .or_else(|| json["error"].as_str())
        .map(|text| text.chars().take(300).collect())
}
