//! Running the service: the listener, the background purge, and a shutdown that lets in-flight
//! requests finish within a grace period.

use std::future::{Future, IntoFuture as _};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::Service;

/// Serves `service` on `listener` until `shutdown` completes, purging the replay store in the
/// background. Once `shutdown` completes, no connection is accepted and in-flight requests
/// finish; after the configured grace period (`shutdown_grace_seconds`) the remaining ones are
/// dropped. Then the store is closed.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if service.clock_pinned {
        tracing::warn!(
            now = service.now(),
            "the clock is PINNED (X402_FACILITATOR_TEST_NOW): for conformance runs only, never in production; no purge runs"
        );
    }
    if !service.requires_api_key() {
        tracing::warn!("no API key: anyone who reaches this port may settle and mint");
    }
    let purger = tokio::spawn(purge_forever(service.clone()));
    let bookkeeper = service
        .flows
        .v1
        .then(|| tokio::spawn(keep_books_forever(service.clone())));
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signalled = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let grace = service.shutdown_grace;
    let server = axum::serve(listener, service.clone().router())
        .with_graceful_shutdown(signalled)
        .into_future();
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "requests still in flight after the shutdown grace: dropped");
            Ok(())
        }
    };
    purger.abort();
    if let Some(bookkeeper) = bookkeeper {
        bookkeeper.abort();
    }
    service.store.close().await;
    served
}

async fn purge_forever(service: Arc<Service>) {
    let mut interval = tokio::time::interval(service.purge_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match service.purge().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired replay entries"),
            Err(err) => tracing::error!(%err, "purging the replay store failed"),
        }
    }
}

/// How often pending deposits and stale withdrawals are checked with the node.
const BOOKKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// How many pending deposits one round checks.
const DEPOSITS_PER_ROUND: u32 = 100;

/// Credits paid deposits and resolves withdrawals left pending by a crash, for ever: at start
/// (a payment in flight at a crash is resolved by asking the node, never paid again), then
/// every few seconds.
async fn keep_books_forever(service: Arc<Service>) {
    let mut interval = tokio::time::interval(BOOKKEEPING_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        interval.tick().await;
        let now = service.now();
        // Deposits: those that can still be paid, and an hour of grace after.
        match service
            .store
            .pending_deposits(
                None,
                now.saturating_sub(super::accounts::DEPOSIT_GRACE_SECS),
                DEPOSITS_PER_ROUND,
            )
            .await
        {
            Ok(pending) => {
                for record in &pending {
                    if let Err(err) = super::accounts::refresh_deposit(&service, record).await {
                        tracing::debug!(payment_hash = %record.payment_hash, ?err, "deposit check");
                    }
                    if let Err(err) = service
                        .store
                        .deposit_checked(&record.payment_hash, now)
                        .await
                    {
                        tracing::warn!(%err, "recording a deposit check");
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "listing pending deposits"),
        }
        // Withdrawals: every pending one is resolved by asking the node (at start: those a crash
        // left in flight). One the node never started is failed only once stale (another
        // instance sharing the store may be about to send it).
        match service.store.pending_withdrawals().await {
            Ok(pending) => {
                for record in pending {
                    if first {
                        tracing::info!(payment_hash = %record.payment_hash, "resolving a withdrawal left pending");
                    }
                    if let Err(err) = super::accounts::resolve(
                        &service,
                        &record.payment_hash,
                        std::time::Duration::ZERO,
                    )
                    .await
                    {
                        tracing::warn!(payment_hash = %record.payment_hash, %err, "resolving a withdrawal");
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "listing pending withdrawals"),
        }
        first = false;
    }
}
