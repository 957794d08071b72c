//! A fan's WebSocket to the notifier (`GET /ws?access_token=...` through the gateway), used as
//! the browser's booking page uses it: opened before registering, so the confirmation cannot
//! outrun it; read until the booking's `booking.confirmed` or `booking.rejected` arrives; closed
//! after. The fan falls back to polling `GET /api/bookings/{id}` when the socket cannot be had
//! or ends, or when no push comes within a bound.
//!
//! Each open socket holds one of the run's socket slots (`--max-active` of them), so the
//! generator stays under the notifier's `WS_MAX_SOCKETS` (one user opens one, well under
//! `WS_MAX_PER_USER`). The handshake and the pushes go around goose, which has no WebSocket
//! client: they are not in goose's metrics, and the report counts how each fan learnt its outcome
//! instead.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::{net::TcpStream, sync::SemaphorePermit};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Error, Message},
};

/// How long the handshake may take before the fan does without a socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing may take; the server drops a socket that stays silent anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One fan's open socket, and the run's slot it holds until dropped.
pub struct Socket<'a> {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    _slot: SemaphorePermit<'a>,
}

/// The outcome the push told: `confirmed` or `rejected`.
pub type Told = &'static str;

impl<'a> Socket<'a> {
    /// Opens `url` (`ws://gateway/ws`) with the fan's access token, in one of `slots`. The
    /// error is why the fan goes without (a short kind, for the report).
    pub async fn open(
        url: &str,
        token: &str,
        slots: &'a tokio::sync::Semaphore,
    ) -> Result<Socket<'a>, String> {
        let slot = slots
            .try_acquire()
            .map_err(|_| "all socket slots taken".to_string())?;
        let url = format!("{url}?access_token={token}");
        match tokio::time::timeout(CONNECT_TIMEOUT, connect_async(url)).await {
            Ok(Ok((stream, _))) => Ok(Self {
                stream,
                _slot: slot,
            }),
            Ok(Err(Error::Http(response))) => Err(format!("refused {}", response.status())),
            Ok(Err(_)) => Err("handshake failed".to_string()),
            Err(_) => Err("handshake timed out".to_string()),
        }
    }

    /// Reads pushes until `booking`'s outcome, for at most `bound`. Pushes about the fan's other
    /// bookings are skipped; pings are answered by the reads themselves (tungstenite queues the
    /// pong and sends it on the next read).
    pub async fn outcome(&mut self, booking: &str, bound: Duration) -> Result<Told, String> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .map_err(|_| "no push in time".to_string())?;
            let text = match next {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(0, |frame| u16::from(frame.code));
                    return Err(format!("closed by the server ({code})"));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err("socket lost".to_string()),
            };
            if let Some(told) = told(&text, booking) {
                return Ok(told);
            }
        }
    }

    /// Closes the socket (and frees its slot), waiting briefly for the close to go out.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.stream.close(None)).await;
    }
}

/// The outcome a push message tells about `booking`, if it is about that booking.
fn told(text: &str, booking: &str) -> Option<Told> {
    let message: Value = serde_json::from_str(text).ok()?;
    if message["booking_id"].as_str() != Some(booking) {
        return None;
    }
    match message["type"].as_str()? {
        "booking.confirmed" => Some("confirmed"),
        "booking.rejected" => Some("rejected"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bookings_own_outcome_counts() {
        let mine = "0190a4a5-0000-7000-8000-000000000001";
        let confirmed =
            format!(r#"{{"type":"booking.confirmed","booking_id":"{mine}","tickets":[]}}"#);
        let rejected =
            format!(r#"{{"type":"booking.rejected","booking_id":"{mine}","reason":"seat_taken"}}"#);
        let other =
            r#"{"type":"booking.confirmed","booking_id":"0190a4a5-0000-7000-8000-000000000002"}"#;
        assert_eq!(told(&confirmed, mine), Some("confirmed"));
        assert_eq!(told(&rejected, mine), Some("rejected"));
        assert_eq!(told(other, mine), None);
        assert_eq!(told("not json", mine), None);
    }
}
