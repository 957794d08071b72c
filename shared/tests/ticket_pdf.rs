//! A booking's PDF read back as a door scanner and a fan would: its text names the event and
//! the seats, and each page's QR decodes to a ticket code that verifies with the public key.

use std::time::Duration;

use shared::{
    ids::{BookingId, EventId, TicketId, UserId},
    ticket_pdf::{self, BookingTickets, TicketPage},
    tokens::{KeyPurpose, TicketClaims, TokenKeys},
};
use time::macros::datetime;

fn booking(keys: &TokenKeys) -> BookingTickets {
    let event_id = EventId::new();
    let ticket = |label: &str, row: i32, seat: i32, class: &str| {
        let ticket_id = TicketId::new();
        TicketPage {
            ticket_id,
            seat_label: label.to_string(),
            section: "A".to_string(),
            row_no: row,
            seat_no: seat,
            class: class.to_string(),
            price_minor: 5_000,
            currency: "EUR".to_string(),
            code: keys
                .sign(
                    TicketClaims {
                        tid: ticket_id,
                        evt: event_id,
                    },
                    Duration::from_secs(3_600),
                )
                .expect("signs"),
        }
    };
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
        tickets: vec![
            ticket("A-1-3", 1, 3, "Normal"),
            ticket("A-1-4", 1, 4, "VIP"),
        ],
    }
}

#[test]
fn a_bookings_pdf_names_event_and_seats_and_its_qr_codes_verify() {
    let keys = TokenKeys::generate(KeyPurpose::Ticket);
    let booking = booking(&keys);
    let pdf = ticket_pdf::render(&booking).expect("renders");
    assert!(pdf.starts_with(b"%PDF-"));
    if let Ok(dir) = std::env::var("TICKET_PDF_KEEP") {
        std::fs::write(format!("{dir}/tickets.pdf"), &pdf).expect("kept");
        std::fs::write(format!("{dir}/page1.png"), testkit::pdf::page_png(&pdf, 1)).expect("kept");
    }

    let text = testkit::pdf::pdf_text(&pdf);
    assert_eq!(text.matches('\u{c}').count(), 2, "two pages: {text}");
    for needle in [
        "Nordic Lights Festival",
        "A-1-3",
        "A-1-4",
        "Normal",
        "VIP",
        "Zoë Fan",
        "Arena, Oslo",
        "19 December 2026",
        "19:30",
        &booking.reference(),
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }

    let verifier = keys.verifying_only();
    for (page, ticket) in booking.tickets.iter().enumerate() {
        let codes = testkit::pdf::qr_codes(&pdf, u32::try_from(page + 1).expect("small"));
        assert_eq!(
            codes,
            std::slice::from_ref(&ticket.code),
            "page {}",
            page + 1
        );
        let claims = verifier
            .verify::<TicketClaims>(&codes[0])
            .expect("the QR verifies")
            .claims;
        assert_eq!(claims.tid, ticket.ticket_id);
        assert_eq!(claims.evt, booking.event_id);
    }
}

#[test]
fn one_ticket_of_a_booking_is_a_one_page_pdf() {
    let keys = TokenKeys::generate(KeyPurpose::Ticket);
    let booking = booking(&keys);
    let second = booking.tickets[1].ticket_id;
    let only = booking.only(second).expect("the booking has it");
    let pdf = ticket_pdf::render(&only).expect("renders");
    let text = testkit::pdf::pdf_text(&pdf);
    assert_eq!(text.matches('\u{c}').count(), 1);
    assert!(text.contains("A-1-4") && !text.contains("A-1-3"), "{text}");
    assert!(booking.only(TicketId::new()).is_none());
}

#[test]
fn a_ticket_qr_code_still_scans_at_screen_resolution() {
    // At 72 dpi a module is about two pixels: a QR drawn as a one-pixel-a-module image is
    // smoothed by the viewer's scaling until it no longer scans there; the vector path does.
    let keys = TokenKeys::generate(KeyPurpose::Ticket);
    let booking = booking(&keys);
    let pdf = ticket_pdf::render(&booking).expect("renders");
    for (page, ticket) in booking.tickets.iter().enumerate() {
        let page = u32::try_from(page + 1).expect("small");
        assert_eq!(
            testkit::pdf::qr_codes_at(&pdf, page, 72),
            std::slice::from_ref(&ticket.code),
            "page {page} at 72 dpi"
        );
    }
}

#[test]
fn a_ticket_page_weighs_a_few_kilobytes_and_the_bench_floor_shows_the_same_text() {
    let keys = TokenKeys::generate(KeyPurpose::Ticket);
    let booking = booking(&keys);
    let pdf = ticket_pdf::render(&booking).expect("renders");
    // Two pages; the greyscale QR image alone was 95 KB a page.
    assert!(pdf.len() < 2 * 16 * 1024, "{} bytes", pdf.len());

    // The bench's floor is the same document without the QR codes, and nothing else missing.
    let floor = ticket_pdf::render_text_only(&booking).expect("renders");
    assert_eq!(testkit::pdf::pdf_text(&floor), testkit::pdf::pdf_text(&pdf));
    assert!(floor.len() < pdf.len());
}
