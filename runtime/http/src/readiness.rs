//! Readiness: the dependencies `/readyz` checks (the runtime adds the
//! broker), each within a time limit; the first failure is the answer.

use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// How long one check may take before the service counts as not ready.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A readiness check: `Ok` when the dependency answers, else why not
/// (never a secret: it is sent to the caller).
pub trait Check: Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {}
impl<F> Check for F where F: Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {}

/// The checks of a service, run in order.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Arc<dyn Check>)>,
}

impl Readiness {
    pub fn add(&mut self, what: &str, check: impl Check) {
        self.checks.push((what.to_owned(), Arc::new(check)));
    }

    /// Run every check; the first failure, in words.
    pub async fn check(&self) -> Result<(), String> {
        for (what, check) in &self.checks {
            match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("{what} does not answer: {e}")),
                Err(_) => {
                    return Err(format!(
                        "{what} does not answer within {}s",
                        CHECK_TIMEOUT.as_secs()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn first_failure_is_the_answer() {
        let mut r = Readiness::default();
        assert_eq!(r.check().await, Ok(()));
        r.add("a", || async { Ok(()) }.boxed());
        r.add("the broker", || {
            async { Err("IoError".to_string()) }.boxed()
        });
        r.add("c", || async { Err("never reached".to_string()) }.boxed());
        assert_eq!(
            r.check().await,
            Err("the broker does not answer: IoError".to_string())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_check_times_out() {
        let mut r = Readiness::default();
        r.add("the broker", || {
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            }
            .boxed()
        });
        assert_eq!(
            r.check().await,
            Err("the broker does not answer within 2s".to_string())
        );
    }
}
