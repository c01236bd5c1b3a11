//! Work that must not depend on the request that started it: a settle whose outcome must be
//! recorded even if the client hangs up, and the facilitator check no request should wait for.

use std::future::Future;

/// Runs `task` to completion even if the caller is dropped half-way: on the current tokio
/// runtime when there is one; in place otherwise (then dropping the caller drops `task`).
///
/// `None` when the task did not complete (it panicked, or the runtime is shutting down).
pub(crate) async fn run_detached<T: Send + 'static>(
    task: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.spawn(task).await.ok(),
        Err(_) => Some(task.await),
    }
}

/// Starts `task` in the background on the current tokio runtime; `false` (and `task` dropped)
/// when there is none.
pub(crate) fn spawn_background(task: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task);
            true
        }
        Err(_) => false,
    }
}
