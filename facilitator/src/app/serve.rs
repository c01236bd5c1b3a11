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
