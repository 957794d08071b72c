//! A tiny SMTP server on port 0 that keeps every message it accepts, and can be "down" (it then
//! greets with 421 and hangs up, as a server refusing service does).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use base64::Engine;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Mail {
    /// The first header `name` (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    /// The decoded body of the first part whose Content-Type starts with `content_type`.
    pub fn part(&self, content_type: &str) -> Option<Vec<u8>> {
        let mut lines = self.data.split("\r\n").peekable();
        while let Some(line) = lines.next() {
            if !line
                .to_ascii_lowercase()
                .starts_with(&format!("content-type: {content_type}"))
            {
                continue;
            }
            // The part's headers up to the blank line.
            let mut base64 = false;
            let mut quoted = false;
            for header in lines.by_ref() {
                if header.is_empty() {
                    break;
                }
                let lower = header.to_ascii_lowercase();
                base64 |= lower.contains("content-transfer-encoding: base64");
                quoted |= lower.contains("content-transfer-encoding: quoted-printable");
            }
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("--"))
                .collect();
            return Some(if base64 {
                base64::engine::general_purpose::STANDARD
                    .decode(body.concat().trim())
                    .expect("base64 part")
            } else if quoted {
                body.join("\n").replace("=\n", "").into_bytes()
            } else {
                body.join("\n").into_bytes()
            });
        }
        None
    }
}

#[derive(Clone)]
pub struct FakeSmtp {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    up: Arc<AtomicBool>,
    refused: Arc<Mutex<usize>>,
}

impl FakeSmtp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let server = Self {
            port: listener.local_addr().expect("addr").port(),
            mails: Arc::default(),
            up: Arc::new(AtomicBool::new(true)),
            refused: Arc::default(),
        };
        let accepting = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = accepting.clone();
                tokio::spawn(async move {
                    let _ = server.session(socket).await;
                });
            }
        });
        server
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// Connections turned away while down.
    pub fn refused(&self) -> usize {
        *self.refused.lock().expect("lock")
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }

    /// The mails sent to `address`.
    pub fn mails_to(&self, address: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|mail| mail.to.iter().any(|to| to == address))
            .collect()
    }

    /// Waits until `address` has `n` mails (or the timeout), then returns them.
    pub async fn wait_for(&self, address: &str, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mails = self.mails_to(address);
            if mails.len() >= n || tokio::time::Instant::now() > deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut reader = BufReader::new(read);
        if !self.up.load(Ordering::SeqCst) {
            *self.refused.lock().expect("lock") += 1;
            write
                .write_all(b"421 test.smtp Service not available\r\n")
                .await?;
            return Ok(());
        }
        write.write_all(b"220 test.smtp ESMTP ready\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_string();
            let upper = command.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                write
                    .write_all(b"250-test.smtp\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?;
            } else if upper.starts_with("HELO") {
                write.write_all(b"250 test.smtp\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                from = address(&command);
                to.clear();
                write.write_all(b"250 OK\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                to.push(address(&command));
                write.write_all(b"250 OK\r\n").await?;
            } else if upper == "DATA" {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    // Undo dot-stuffing.
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                self.mails.lock().expect("lock").push(Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                });
                write.write_all(b"250 OK queued\r\n").await?;
            } else if upper == "QUIT" {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            } else {
                // RSET, NOOP and the rest.
                write.write_all(b"250 OK\r\n").await?;
            }
        }
    }
}

fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_string()
}
