//! What a booking's ticket PDF costs to render (`ticket_pdf::render`), against what its content
//! needs, measured in the same run: its QR codes encoded alone (`fast_qr`, the encoder the PDF
//! uses: the ticket codes turned into module matrices), and the same pages without their QR
//! codes (`render_text_only`: the text, the card, the PDF's structure). The floor is their sum.
//! A reference row: the same codes encoded by the `qrcode` crate, the encoder before.
//!
//!     cargo bench -p shared --features ticket-pdf --bench ticket_pdf
//!
//! Environment: `BENCH_PDF` (default 400: renders per figure for a one-ticket booking; a
//! booking of n tickets renders 400/n times), `BENCH_ROUNDS` (default 3: each figure is the
//! best of this many rounds, the rounds interleaved so that a busy machine slows every row alike).
//! The ticket codes are real signed ticket tokens, as long as the ones the worker issues.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use shared::{
    ids::{BookingId, EventId, TicketId, UserId},
    ticket_pdf::{self, BookingTickets, TicketPage},
    tokens::{KeyPurpose, TicketClaims, TokenKeys},
};
use time::macros::datetime;

/// The mimalloc allocator, as in every service binary: the allocator is part of the cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn booking(keys: &TokenKeys, tickets: usize) -> BookingTickets {
    let event_id = EventId::new();
    BookingTickets {
        booking_id: BookingId::new(),
        user_id: UserId::new(),
        event_id,
        holder_name: "Zoë Fan".to_string(),
        holder_email: "zoe@example.test".to_string(),
        event_title: "Nordic Lights Festival: the Winter Night Concert".to_string(),
        venue_name: "Arena".to_string(),
        venue_city: "Oslo".to_string(),
        starts_at: datetime!(2026-12-19 19:30 UTC),
        tickets: (0..tickets)
            .map(|i| {
                let ticket_id = TicketId::new();
                let seat = i32::try_from(i).expect("small") + 3;
                TicketPage {
                    ticket_id,
                    seat_label: format!("A-1-{seat}"),
                    section: "A".to_string(),
                    row_no: 1,
                    seat_no: seat,
                    class: "Normal".to_string(),
                    price_minor: 5_000,
                    currency: "EUR".to_string(),
                    code: keys
                        .sign(
                            TicketClaims {
                                tid: ticket_id,
                                evt: event_id,
                            },
                            Duration::from_secs(30 * 24 * 3600),
                        )
                        .expect("signs"),
                }
            })
            .collect(),
    }
}

/// The time one call of `op` takes, averaged over `count` calls.
fn per_call(count: usize, mut op: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..count {
        op();
    }
    started.elapsed() / u32::try_from(count).unwrap_or(u32::MAX)
}

/// Encodes as `ticket_pdf` does (error correction M).
fn encode_qr(code: &str) -> fast_qr::QRCode {
    fast_qr::QRBuilder::new(code.as_bytes())
        .ecl(fast_qr::ECL::M)
        .build()
        .expect("a ticket code fits a QR code")
}

/// The encoder before, same error correction.
fn encode_qr_before(code: &str) -> qrcode::QrCode {
    qrcode::QrCode::with_error_correction_level(code.as_bytes(), qrcode::EcLevel::M)
        .expect("a ticket code fits a QR code")
}

struct Row {
    tickets: usize,
    render: Duration,
    render_bytes: usize,
    qr: Duration,
    qr_before: Duration,
    text: Duration,
    text_bytes: usize,
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let count = env_or("BENCH_PDF", 400).max(1);
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    let keys = TokenKeys::generate(KeyPurpose::Ticket);
    let bookings: Vec<BookingTickets> = [1, 2, 4].iter().map(|&n| booking(&keys, n)).collect();

    let mut rows: Vec<Row> = bookings
        .iter()
        .map(|b| Row {
            tickets: b.tickets.len(),
            render: Duration::MAX,
            render_bytes: ticket_pdf::render(b).expect("renders").len(),
            qr: Duration::MAX,
            qr_before: Duration::MAX,
            text: Duration::MAX,
            text_bytes: ticket_pdf::render_text_only(b).expect("renders").len(),
        })
        .collect();
    for _ in 0..rounds {
        for (row, b) in rows.iter_mut().zip(&bookings) {
            let calls = (count / row.tickets).max(1);
            row.render = row.render.min(per_call(calls, || {
                black_box(ticket_pdf::render(black_box(b)).expect("renders"));
            }));
            row.qr = row.qr.min(per_call(calls, || {
                for ticket in &b.tickets {
                    black_box(encode_qr(black_box(&ticket.code)));
                }
            }));
            row.qr_before = row.qr_before.min(per_call(calls, || {
                for ticket in &b.tickets {
                    black_box(encode_qr_before(black_box(&ticket.code)));
                }
            }));
            row.text = row.text.min(per_call(calls, || {
                black_box(ticket_pdf::render_text_only(black_box(b)).expect("renders"));
            }));
        }
    }

    let code = &bookings[0].tickets[0].code;
    let qr = encode_qr(code);
    println!(
        "ticket code: {} characters; QR: {} modules a side (error correction M)",
        code.len(),
        qr.size
    );
    println!(
        "| tickets | render | per page | PDF bytes | floor: QR encode | floor: PDF without QR (bytes) | render / floor | ref: QR encode by `qrcode` |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let floor = row.qr + row.text;
        println!(
            "| {} | {:.0} µs | {:.0} µs | {} | {:.0} µs | {:.0} µs ({}) | {:.2} | {:.0} µs |",
            row.tickets,
            micros(row.render),
            micros(row.render) / row.tickets as f64,
            row.render_bytes,
            micros(row.qr),
            micros(row.text),
            row.text_bytes,
            row.render.as_secs_f64() / floor.as_secs_f64(),
            micros(row.qr_before),
        );
    }
}
