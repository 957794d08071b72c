//! The push phase's generator: S server-sent event streams
//! (`GET /api/queue/{id}/events?queue_token=`) held open at once, each counting the
//! `event: status` frames it receives. The streams are opened first (each sends its first
//! frame at once); the phase's window starts when they are all open, so the figures are the
//! steady state's: frames per second while the line stands still or moves.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::{sync::Semaphore, task::JoinSet};

/// Counts complete `event: status` frames in an SSE byte stream fed in arbitrary chunks:
/// frames end with a blank line; what is left of a frame waits for the next chunk.
#[derive(Debug, Default)]
pub struct FrameCounter {
    partial: Vec<u8>,
}

impl FrameCounter {
    /// Feeds one chunk; returns the status frames it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> u64 {
        self.partial.extend_from_slice(chunk);
        let mut frames = 0;
        let mut start = 0;
        while let Some(end) = find(&self.partial[start..], b"\n\n") {
            let frame = &self.partial[start..start + end];
            if frame
                .split(|b| *b == b'\n')
                .any(|line| line == b"event: status" || line == b"event:status")
            {
                frames += 1;
            }
            start += end + 2;
        }
        self.partial.drain(..start);
        frames
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The streams of a push phase, open.
pub struct Streams {
    tasks: JoinSet<()>,
    pub frames: Arc<AtomicU64>,
    pub open: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    pub opened_in: Duration,
}

/// Opens one stream per token (at most `streams`), `open_concurrency` being opened at a time,
/// and waits until each has answered (or failed, or `open_timeout` passed).
pub async fn open(
    base: &str,
    event: &str,
    tokens: &[String],
    streams: usize,
    open_concurrency: usize,
    open_timeout: Duration,
) -> anyhow::Result<Streams> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .context("building the push client")?;
    let frames = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let opening = Arc::new(Semaphore::new(open_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let wanted = streams.min(tokens.len());
    for token in tokens.iter().take(wanted) {
        let url = format!("{base}/api/queue/{event}/events?queue_token={token}");
        let (client, frames, open, failed, opening) = (
            client.clone(),
            frames.clone(),
            open.clone(),
            failed.clone(),
            opening.clone(),
        );
        tasks.spawn(async move {
            let permit = opening.acquire_owned().await;
            let response = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => r,
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            open.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            let mut response = response;
            let mut counter = FrameCounter::default();
            while let Ok(Some(chunk)) = response.chunk().await {
                frames.fetch_add(counter.feed(&chunk), Ordering::Relaxed);
            }
            // The stream ended before the phase did.
            open.fetch_sub(1, Ordering::Relaxed);
            failed.fetch_add(1, Ordering::Relaxed);
        });
    }
    let deadline = started + open_timeout;
    while open.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < wanted as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Streams {
        tasks,
        frames,
        open,
        failed,
        opened_in: started.elapsed(),
    })
}

impl Streams {
    /// Closes every stream.
    pub async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::FrameCounter;

    #[test]
    fn status_frames_are_counted_across_chunk_boundaries_and_comments_are_not() {
        let mut c = FrameCounter::default();
        let stream = b"event: status\ndata: {\"state\":\"waiting\"}\n\n: keep-alive\n\nevent: status\ndata: {}\n\n";
        let (a, b) = stream.split_at(20);
        assert_eq!(c.feed(a), 0);
        assert_eq!(c.feed(&b[..b.len() - 1]), 1);
        assert_eq!(c.feed(b"\n"), 1);
        assert_eq!(c.feed(b"event: other\ndata: x\n\n"), 0);
        assert!(c.partial.is_empty());
    }
}
