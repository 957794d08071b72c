//! Pauses between retries that double after each failure, up to a cap: how every loop that
//! retries a broker, Postgres or SMTP waits, so an outage is not hammered and a recovery is
//! noticed soon.

use std::time::Duration;

use crate::shutdown::Shutdown;

/// The pause before the next retry: `first`, then twice the last one, never more than `max`;
/// [`Backoff::reset`] after a success starts again from `first`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The pause to take now; the one after it is twice as long (up to the cap).
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// The next pause is `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Sleeps the next pause.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_pause()).await;
    }

    /// Sleeps the next pause, or less if `shutdown` comes first (the caller checks
    /// [`Shutdown::is_shutdown`] after).
    pub async fn wait_or(&mut self, shutdown: &mut Shutdown) {
        tokio::select! {
            () = tokio::time::sleep(self.next_pause()) => {}
            () = shutdown.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pauses_double_up_to_the_cap_and_a_reset_starts_over() {
        let mut backoff = Backoff::new(ms(100), ms(1_000));
        let pauses: Vec<_> = (0..6).map(|_| backoff.next_pause()).collect();
        assert_eq!(
            pauses,
            [ms(100), ms(200), ms(400), ms(800), ms(1_000), ms(1_000)]
        );
        backoff.reset();
        assert_eq!(backoff.next_pause(), ms(100));
        assert_eq!(backoff.next_pause(), ms(200));
    }

    #[test]
    fn a_first_pause_above_the_cap_is_capped() {
        let mut backoff = Backoff::new(ms(500), ms(300));
        assert_eq!(backoff.next_pause(), ms(300));
        assert_eq!(backoff.next_pause(), ms(300));
    }

    #[tokio::test]
    async fn a_stop_cuts_the_pause_short() {
        let (stopper, mut shutdown) = crate::shutdown::channel();
        let mut backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        let waiting = tokio::spawn(async move { backoff.wait_or(&mut shutdown).await });
        tokio::time::sleep(ms(20)).await;
        assert!(!waiting.is_finished());
        stopper.stop();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken by the stop, not the minute's pause")
            .expect("no panic");
    }
}
