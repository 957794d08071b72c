//! The graceful-shutdown signal: Ctrl-C or SIGTERM (what `infra/dev down`, systemd and
//! Kubernetes send). Servers stop accepting, finish in-flight requests and exit; consumers stop
//! taking messages, finish and ack what they hold, and exit.
//!
//! Inside a process the signal travels as a [`Shutdown`] (as in mini-redis `src/shutdown.rs`):
//! every loop that must stop holds a clone and checks [`Shutdown::is_shutdown`] between steps
//! or races [`Shutdown::recv`] against its wait; one [`Stopper`] sends it.

use tokio::sync::watch;

/// Resolves once the process is asked to stop.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

/// A new stop signal: the [`Stopper`] that sends it, and the [`Shutdown`] to hand (cloned) to
/// every loop that must stop.
pub fn channel() -> (Stopper, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Stopper(sender), Shutdown(receiver))
}

/// Sends the stop signal. Cheap to clone; stopping twice is stopping once, and dropping every
/// clone stops too (no loop outlives the owner of its stopper).
#[derive(Debug, Clone)]
pub struct Stopper(watch::Sender<bool>);

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Another listener of this signal.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

/// Listens for the stop signal. A `watch` channel rather than a broadcast: the signal is a
/// state, not a message, so a loop that looks late still sees it, a clone costs a reference
/// count, and a listener never lags.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Has the stop been sent (or every [`Stopper`] dropped)?
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow() || self.0.is_closed()
    }

    /// Resolves once the stop is sent, at once if it already was.
    pub async fn recv(&mut self) {
        // An error means every stopper is gone: that stops too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_stop_wakes_every_waiting_clone_and_later_ones_see_it_at_once() {
        let (stopper, shutdown) = channel();
        assert!(!shutdown.is_shutdown());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let mut shutdown = shutdown.clone();
                tokio::spawn(async move { shutdown.recv().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(waiters.iter().all(|waiter| !waiter.is_finished()));
        stopper.stop();
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(1), waiter)
                .await
                .expect("woken by the stop")
                .expect("no panic");
        }
        assert!(shutdown.is_shutdown());
        let mut late = stopper.subscribe();
        tokio::time::timeout(Duration::from_millis(100), late.recv())
            .await
            .expect("a stop already sent is seen at once");
    }

    #[tokio::test]
    async fn dropping_every_stopper_stops() {
        let (stopper, mut shutdown) = channel();
        let other = stopper.clone();
        drop(stopper);
        assert!(!shutdown.is_shutdown(), "a clone still holds the signal");
        drop(other);
        assert!(shutdown.is_shutdown());
        tokio::time::timeout(Duration::from_millis(100), shutdown.recv())
            .await
            .expect("no stopper left: recv returns");
    }
}
