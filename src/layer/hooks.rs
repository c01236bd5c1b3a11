//! Lifecycle hooks: async callbacks the layer awaits when a payment is settled, when its settle
//! fails, and when a request's payment is refused, to record revenue, compensate a handler's
//! side effects or count abuse.
//!
//! Each hook runs in a task of its own on the tokio runtime and is awaited before the response
//! leaves, so it completes even if the client hangs up; a hook that panics (in its future or
//! before returning it) is logged and does not change the answer. Settle hooks run inside the
//! settle's detached task, after its outcome is recorded and while the invoice is still claimed:
//! a retry of the same invoice gets 409 until they are done. A hook delays the response by its
//! own run time: keep it short, or spawn.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, StatusCode};

use super::detach::run_detached;
use crate::network::Network;
use crate::types::SettleResponse;

/// A payment the facilitator settled: the invoice is paid.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settled {
    /// The priced route: its declaration in the price table (`"GET /weather"`), or, for
    /// [`X402Layer::charge`](crate::X402Layer::charge) and
    /// [`price_every_request`](crate::layer::X402LayerBuilder::price_every_request), axum's
    /// matched path (`"/items/{id}"`) when known, else the request's path.
    pub route: String,
    /// The request's method.
    pub method: Method,
    /// The invoice's payment hash, hex (also the settlement's `transaction`).
    pub payment_hash: String,
    /// The amount paid, in msat.
    pub amount_msat: u64,
    /// Who paid: the facilitator's `payer`, else the authorization's `from`.
    pub payer: String,
    /// The network paid on.
    pub network: Network,
    /// Whether the handler had already run (settle-after-handler routes) or not yet (settle-
    /// before-handler routes, whose handler runs after this hook).
    pub handler_ran: bool,
    /// The facilitator's answer.
    pub settlement: SettleResponse,
}

/// A settle that did not pay: the facilitator refused (`success: false`, answered 402), failed
/// to answer (502/504), or reported a settlement of another invoice or network (502; the
/// invoice may still have been paid, see [`Self::may_have_paid`]).
///
/// On settle-after-handler routes the handler already ran and its response is dropped: this is
/// where its side effects are compensated.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SettleFailed {
    /// The priced route, as in [`Settled::route`].
    pub route: String,
    /// The request's method.
    pub method: Method,
    /// The invoice's payment hash, hex.
    pub payment_hash: String,
    /// The price, in msat.
    pub amount_msat: u64,
    /// Who would have paid: the facilitator's `payer`, else the authorization's `from`.
    pub payer: String,
    /// Why: the facilitator's `errorReason`, or what went wrong with the call.
    pub reason: String,
    /// The status the client gets instead of the handler's response.
    pub status: StatusCode,
    /// Whether the handler ran (settle-after-handler routes).
    pub handler_ran: bool,
    /// Whether the facilitator may have paid anyway (a success for another invoice or network,
    /// or a refusal as a duplicate): the layer then refuses this invoice from now on.
    pub may_have_paid: bool,
}

/// A request that carried a payment (`X-PAYMENT`) and was answered without running the handler:
/// the layer's pre-checks refused it (malformed, wrong amount, expired, reused, another payee),
/// another request holds its invoice (409), `/verify` found it invalid, or `/verify` failed.
///
/// A request without any payment (a plain 402 offer) is not a refusal.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PaymentRefused {
    /// The priced route, as in [`Settled::route`].
    pub route: String,
    /// The request's method.
    pub method: Method,
    /// The invoice's payment hash, hex, once its invoice passed the pre-checks.
    pub payment_hash: Option<String>,
    /// The price, in msat.
    pub amount_msat: u64,
    /// Why the payment was refused: the 402's `error`; for a 409, the conflict; for a 429 (the
    /// fresh offer was rate-limited), the reason the payment itself was refused; for a `/verify`
    /// failure (502/504), the whole facilitator error, which the client does not see.
    pub reason: String,
    /// The status answered (402, 409, 429, 502 or 504).
    pub status: StatusCode,
}

/// A boxed hook future.
type HookFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One stored hook.
type Hook<E> = Arc<dyn Fn(E) -> HookFuture + Send + Sync>;

/// Boxes a user's async callback.
pub(crate) fn hook<E, H, Fut>(callback: H) -> Hook<E>
where
    H: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |event| Box::pin(callback(event)))
}

/// The hooks of a layer; empty by default, and then free.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) settled: Option<Hook<Settled>>,
    pub(crate) settle_failed: Option<Hook<SettleFailed>>,
    pub(crate) payment_refused: Option<Hook<PaymentRefused>>,
}

impl Hooks {
    /// Whether no hook is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.settled.is_none() && self.settle_failed.is_none() && self.payment_refused.is_none()
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("settled", &self.settled.is_some())
            .field("settle_failed", &self.settle_failed.is_some())
            .field("payment_refused", &self.payment_refused.is_some())
            .finish()
    }
}

/// Runs `hook` on `event`, when there is a hook, in a task of its own (see the module docs).
pub(crate) async fn fire<E: Send + 'static>(hook: Option<&Hook<E>>, name: &'static str, event: E) {
    let Some(hook) = hook else { return };
    let hook = Arc::clone(hook);
    // The callback itself is called in the task too: a panic before it returns its future is
    // caught as well.
    if run_detached(async move { hook(event).await })
        .await
        .is_none()
    {
        tracing::error!(hook = name, "payment hook panicked");
    }
}
