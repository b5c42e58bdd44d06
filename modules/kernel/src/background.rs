//! Work a request leaves behind after its answer (a password reset request looks the address
//! up and queues the email after answering). Such tasks keep the request's id in the logs, and
//! a graceful shutdown waits for them, so an answered request never loses its effect.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::requests::RequestIds;

#[derive(Clone)]
pub struct Background {
    inner: Arc<Inner>,
    ids: RequestIds,
}

#[derive(Default)]
struct Inner {
    running: AtomicUsize,
    idle: Notify,
}

/// Counts its task out, however the task ends.
struct Running(Arc<Inner>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Background {
    pub fn new(ids: RequestIds) -> Background {
        Background {
            inner: Arc::default(),
            ids,
        }
    }

    /// Runs `work` on its own task, under the current request's id.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.inner.running.fetch_add(1, Ordering::AcqRel);
        let running = Running(self.inner.clone());
        let (ids, id) = (self.ids.clone(), self.ids.current());
        tokio::spawn(async move {
            let _running = running;
            let _binding = id.and_then(|id| ids.bind(id));
            work.await;
        });
    }

    /// Waits until no task runs, at most `limit`; false when some were still running.
    pub async fn wait(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let idle = self.inner.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.inner.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_task() {
        let background = Background::new(RequestIds::default());
        assert!(background.wait(Duration::from_millis(10)).await);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        background.spawn(async move {
            let _ = rx.await;
        });
        assert!(!background.wait(Duration::from_millis(50)).await);
        let _ = tx.send(());
        assert!(background.wait(Duration::from_secs(5)).await);
    }
}
