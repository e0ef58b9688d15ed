//! Shutdown on SIGTERM (what Kubernetes sends) or Ctrl-C (SIGINT).

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or Ctrl-C; the signal is logged.
/// Must be called inside a Tokio runtime (it spawns the waiting task).
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn(cancel_on_signal(token.clone()));
    token
}

/// Wait for SIGTERM or Ctrl-C, log which, and cancel `token`. Returns
/// early, without cancelling, when `token` is cancelled otherwise.
pub async fn cancel_on_signal(token: CancellationToken) {
    tokio::select! {
        which = signal() => {
            tracing::info!(signal = which, "shutdown requested");
            token.cancel();
        }
        () = token.cancelled() => {}
    }
}

/// Resolves with the name of the first of SIGTERM and SIGINT (Ctrl-C).
async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = ctrl_c() => "SIGINT",
            () = term => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await;
        "Ctrl-C"
    }
}

/// Resolves on Ctrl-C; never when it cannot be watched.
async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "cannot watch Ctrl-C");
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_when_the_token_is_cancelled_otherwise() {
        let token = CancellationToken::new();
        let waiting = tokio::spawn(cancel_on_signal(token.clone()));
        token.cancel();
        waiting.await.unwrap();
    }
}
