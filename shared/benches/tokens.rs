//! What a token costs to issue and to check, per kind of key: Ed25519-signed tokens (access,
//! admission, ticket; verified by other services with the public key) against sealed ones
//! (HS256 under a key derived from the private key: the queue token, which the waiting room
//! issues at join and reads back on every status poll).
//!
//! `cargo bench -p shared --bench tokens` (env: `BENCH_TOKENS`, default 20000 per figure).

use std::time::{Duration, Instant};

use shared::{
    ids::{EventId, UserId},
    tokens::{KeyPurpose, QueueClaims, QueuePlace, TokenKeys},
};

fn per_op(count: usize, mut op: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..count {
        op();
    }
    started.elapsed() / u32::try_from(count).unwrap_or(u32::MAX)
}

fn main() {
    let count: usize = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let keys = TokenKeys::generate(KeyPurpose::Admission);
    let claims = QueueClaims {
        sub: UserId::new(),
        evt: EventId::new(),
        place: Some(QueuePlace::Number(42)),
    };
    let ttl = Duration::from_secs(600);
    let signed = keys.sign(claims.clone(), ttl).expect("signs");
    let sealed = keys.seal(claims.clone(), ttl).expect("seals");

    let rows = [
        (
            "sign (Ed25519)",
            per_op(count, || {
                keys.sign(claims.clone(), ttl).expect("signs");
            }),
        ),
        (
            "verify (Ed25519)",
            per_op(count, || {
                keys.verify::<QueueClaims>(&signed).expect("verifies");
            }),
        ),
        (
            "seal (HS256)",
            per_op(count, || {
                keys.seal(claims.clone(), ttl).expect("seals");
            }),
        ),
        (
            "open (HS256)",
            per_op(count, || {
                keys.open::<QueueClaims>(&sealed).expect("opens");
            }),
        ),
    ];
    println!("| operation | per token | per second (one core) |");
    println!("|---|---:|---:|");
    for (name, took) in rows {
        println!(
            "| {name} | {:.1} µs | {:.0} |",
            took.as_secs_f64() * 1e6,
            1.0 / took.as_secs_f64()
        );
    }
}
