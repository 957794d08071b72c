//! (feature `ticket-pdf`) A booking's tickets as one PDF, a page per ticket: event, venue, date
//! and time, seat, class, holder, booking reference, and a QR code of the ticket's signed code
//! (`tickets.code`, a [`TicketClaims`](crate::tokens::TicketClaims) token verifiable offline).
//!
//! [`load`] reads what a booking's PDF needs from Postgres; [`render`] is pure CPU work (about 0.6
//! ms a page, `benches/ticket_pdf.rs`): async callers run it in `spawn_blocking`.
//! Built-in PDF fonts only (nothing embedded), so text is WinAnsi (Latin-1 and a few more);
//! other characters print as `?`.
//!
//! The QR code is drawn as vectors (`qr_form`), not as an image: crisp at any zoom and on any
//! printer, and a few kilobytes a page. What a page costs is what its content needs: encoding
//! the QR code (`fast_qr`: the `qrcode` crate took 3.6 ms a code, choosing its mask) and the
//! text; the bench measures both floors beside [`render`].

use std::{collections::BTreeMap, io::Write as _};

use anyhow::Context;
use printpdf::{
    BuiltinFont, Color, DictItem, ExternalStream, ExternalXObject, Line, LinePoint, Mm, Op,
    PaintMode, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, Rect, Rgb, TextItem,
    XObjectTransform,
};
use sqlx::{PgConnection, PgPool};
use time::{OffsetDateTime, macros::format_description};

use crate::ids::{BookingId, EventId, TicketId, UserId};

/// One ticket's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPage {
    pub ticket_id: TicketId,
    pub seat_label: String,
    pub section: String,
    pub row_no: i32,
    pub seat_no: i32,
    pub class: String,
    pub price_minor: i64,
    pub currency: String,
    /// The signed ticket code: what the QR encodes.
    pub code: String,
}

/// Everything a booking's PDF shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingTickets {
    pub booking_id: BookingId,
    pub user_id: UserId,
    pub event_id: EventId,
    pub holder_name: String,
    pub holder_email: String,
    pub event_title: String,
    pub venue_name: String,
    pub venue_city: String,
    pub starts_at: OffsetDateTime,
    pub tickets: Vec<TicketPage>,
}

impl BookingTickets {
    /// The short reference printed on the ticket: the last 8 hex digits of the booking id.
    /// Ids are UUIDv7, whose first digits are a timestamp shared by every booking of the same
    /// minute; the last ones are random.
    pub fn reference(&self) -> String {
        let hex = self.booking_id.as_uuid().simple().to_string();
        hex[hex.len() - 8..].to_uppercase()
    }

    /// The same booking with only one of its tickets (`None` if it has no such ticket).
    pub fn only(&self, ticket_id: TicketId) -> Option<Self> {
        let ticket = self
            .tickets
            .iter()
            .find(|t| t.ticket_id == ticket_id)?
            .clone();
        Some(Self {
            tickets: vec![ticket],
            ..self.clone()
        })
    }
}

/// Reads a confirmed booking's tickets (seat order). `None` when there is no such booking or
/// it has no tickets (pending or rejected).
pub async fn load(db: &PgPool, booking_id: BookingId) -> anyhow::Result<Option<BookingTickets>> {
    let mut conn = db.acquire().await.context("connecting to Postgres")?;
    load_on(&mut conn, booking_id).await
}

/// [`load`] on a connection (or transaction) the caller holds already.
pub async fn load_on(
    db: &mut PgConnection,
    booking_id: BookingId,
) -> anyhow::Result<Option<BookingTickets>> {
    type Head = (
        UserId,
        EventId,
        String,
        String,
        String,
        OffsetDateTime,
        String,
        String,
    );
    let head: Option<Head> = sqlx::query_as(
        "SELECT b.user_id, b.event_id, u.name, u.email, e.title, e.starts_at, v.name, v.city
           FROM bookings b
           JOIN users u ON u.id = b.user_id
           JOIN events e ON e.id = b.event_id
           JOIN venues v ON v.id = e.venue_id
          WHERE b.id = $1",
    )
    .bind(booking_id)
    .fetch_optional(&mut *db)
    .await
    .context("reading the booking")?;
    let Some((user_id, event_id, holder_name, holder_email, event_title, starts_at, venue, city)) =
        head
    else {
        return Ok(None);
    };
    type Row = (
        TicketId,
        String,
        String,
        i32,
        i32,
        String,
        i64,
        String,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT t.id, s.label, s.section, s.row_no, s.seat_no, c.name, t.price_minor, c.currency,
                t.code
           FROM tickets t
           JOIN seats s ON s.id = t.seat_id
           JOIN ticket_classes c ON c.id = t.class_id
          WHERE t.booking_id = $1
          ORDER BY s.section, s.row_no, s.seat_no, s.label",
    )
    .bind(booking_id)
    .fetch_all(&mut *db)
    .await
    .context("reading the tickets")?;
    if rows.is_empty() {
        return Ok(None);
    }
    let tickets = rows
        .into_iter()
        .map(
            |(
                ticket_id,
                seat_label,
                section,
                row_no,
                seat_no,
                class,
                price_minor,
                currency,
                code,
            )| {
                TicketPage {
                    ticket_id,
                    seat_label,
                    section,
                    row_no,
                    seat_no,
                    class,
                    price_minor,
                    currency,
                    code,
                }
            },
        )
        .collect();
    Ok(Some(BookingTickets {
        booking_id,
        user_id,
        event_id,
        holder_name,
        holder_email,
        event_title,
        venue_name: venue,
        venue_city: city,
        starts_at,
        tickets,
    }))
}

/// Which booking holds `ticket_id`, and who owns it.
pub async fn ticket_owner(
    db: &PgPool,
    ticket_id: TicketId,
) -> anyhow::Result<Option<(BookingId, UserId)>> {
    sqlx::query_as(
        "SELECT b.id, b.user_id FROM tickets t JOIN bookings b ON b.id = t.booking_id
          WHERE t.id = $1",
    )
    .bind(ticket_id)
    .fetch_optional(db)
    .await
    .context("reading the ticket's owner")
}

// A4 portrait; the ticket is a card in the upper part of the page.
const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const CARD_X: f32 = 15.0;
const CARD_W: f32 = 180.0;
const CARD_TOP: f32 = 282.0;
const CARD_H: f32 = 135.0;
const BAND_H: f32 = 28.0;
const QR_SIZE: f32 = 62.0;
/// The white margin around the QR code, in modules (the standard's quiet zone).
const QUIET_ZONE: usize = 4;

fn rgb(r: f32, g: f32, b: f32) -> Color {
    Color::Rgb(Rgb::new(r, g, b, None))
}

fn ink() -> Color {
    rgb(0.11, 0.12, 0.16)
}

fn muted() -> Color {
    rgb(0.42, 0.45, 0.50)
}

fn accent() -> Color {
    rgb(0.10, 0.23, 0.45)
}

fn text(ops: &mut Vec<Op>, x: f32, y: f32, font: BuiltinFont, size: f32, color: Color, s: &str) {
    ops.extend([
        Op::StartTextSection,
        Op::SetFillColor { col: color },
        Op::SetFont {
            font: PdfFontHandle::Builtin(font),
            size: Pt(size),
        },
        Op::SetTextCursor {
            pos: Point::new(Mm(x), Mm(y)),
        },
        Op::ShowText {
            items: vec![TextItem::Text(s.to_string())],
        },
        Op::EndTextSection,
    ]);
}

/// A small grey caption over a larger value.
fn field(ops: &mut Vec<Op>, x: f32, y: f32, label: &str, value: &str, size: f32) {
    text(ops, x, y, BuiltinFont::Helvetica, 7.5, muted(), label);
    // Below the caption by the value's height plus a gap.
    let drop = 1.5 + size * 0.4;
    text(
        ops,
        x,
        y - drop,
        BuiltinFont::HelveticaBold,
        size,
        ink(),
        value,
    );
}

fn rect(ops: &mut Vec<Op>, x: f32, y: f32, w: f32, h: f32, mode: PaintMode) {
    ops.push(Op::DrawRectangle {
        rectangle: Rect {
            x: Mm(x).into(),
            y: Mm(y).into(),
            width: Mm(w).into(),
            height: Mm(h).into(),
            mode: Some(mode),
            winding_order: None,
        },
    });
}

fn line(ops: &mut Vec<Op>, from: (f32, f32), to: (f32, f32)) {
    ops.push(Op::DrawLine {
        line: Line {
            points: vec![
                LinePoint {
                    p: Point::new(Mm(from.0), Mm(from.1)),
                    bezier: false,
                },
                LinePoint {
                    p: Point::new(Mm(to.0), Mm(to.1)),
                    bezier: false,
                },
            ],
            is_closed: false,
        },
    });
}

/// Cuts `s` to at most `max` characters (with an ellipsis), on a word boundary if it can.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max.saturating_sub(3)).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > max / 2 => cut[..space].to_string(),
        _ => cut,
    };
    format!("{}...", cut.trim_end())
}

/// Splits a title into at most two lines of about `width` characters.
fn two_lines(s: &str, width: usize) -> Vec<String> {
    if s.chars().count() <= width {
        return vec![s.to_string()];
    }
    let mut first = String::new();
    let mut words = s.split_whitespace().peekable();
    while let Some(word) = words.peek() {
        let next = first.chars().count() + word.chars().count() + usize::from(!first.is_empty());
        if next > width && !first.is_empty() {
            break;
        }
        if !first.is_empty() {
            first.push(' ');
        }
        first.push_str(word);
        words.next();
    }
    let rest: Vec<&str> = words.collect();
    if first.chars().count() > width {
        // One very long word: hard cut.
        let all: String = s.chars().collect();
        let head: String = all.chars().take(width).collect();
        let tail: String = all.chars().skip(width).collect();
        return vec![head, fit(&tail, width)];
    }
    if rest.is_empty() {
        vec![first]
    } else {
        vec![first, fit(&rest.join(" "), width)]
    }
}

fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", minor / 100, minor % 100)
}

/// The QR of `code` (error correction M) as a Form XObject of `side` × `side` units, a unit a
/// module, quiet zone included: a white square, then one path of every dark module's
/// horizontal run, filled once (separate fills would leave hairline seams between neighbouring
/// modules in anti-aliased viewers). Returns the form and `side`.
///
/// Vectors rather than an image: the 4-pixels-a-module greyscale image this replaces was 95 KB
/// a page (printpdf stored it uncompressed), and the same image at 1 pixel a module, smoothed by
/// the viewer's scaling, no longer scanned when poppler rendered it at 72 dpi; the path does.
/// The content (~15 KB of `x y w 1 re`) is deflated here at the fast level (~70 µs, 5 KB):
/// lopdf's `Document::compress` deflates every stream without a filter at its best level,
/// which took over a millisecond for this one.
fn qr_form(code: &str) -> anyhow::Result<(ExternalXObject, usize)> {
    let qr = fast_qr::QRBuilder::new(code.as_bytes())
        .ecl(fast_qr::ECL::M)
        .build()
        .context("encoding the ticket code as a QR code")?;
    let side = qr.size + 2 * QUIET_ZONE;
    let mut path = Vec::with_capacity(16 * 1024);
    // White (`1 g`) square, then black (`0 g`) modules; PDF's y axis points up.
    writeln!(path, "1 g 0 0 {side} {side} re f 0 g")?;
    for y in 0..qr.size {
        let row = &qr[y];
        let bottom = side - QUIET_ZONE - 1 - y;
        let mut x = 0;
        while x < qr.size {
            if !row[x].value() {
                x += 1;
                continue;
            }
            let start = x;
            while x < qr.size && row[x].value() {
                x += 1;
            }
            writeln!(path, "{} {bottom} {} 1 re", start + QUIET_ZONE, x - start)?;
        }
    }
    writeln!(path, "f")?;
    let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    deflate.write_all(&path)?;
    let content = deflate.finish()?;

    let name = |s: &str| DictItem::Name(s.as_bytes().to_vec());
    let units = DictItem::Int(i64::try_from(side)?);
    let dict: BTreeMap<String, DictItem> = [
        ("Type", name("XObject")),
        ("Subtype", name("Form")),
        (
            "BBox",
            DictItem::Array(vec![
                DictItem::Int(0),
                DictItem::Int(0),
                units.clone(),
                units,
            ]),
        ),
        ("Filter", name("FlateDecode")),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect();
    let form = ExternalXObject {
        stream: ExternalStream {
            dict,
            content,
            // Deflated already.
            compress: false,
        },
        // No pixel size: the form is placed by its own units (see `render`'s transform).
        width: None,
        height: None,
        dpi: None,
    };
    Ok((form, side))
}

/// Renders the booking's PDF: one A4 page per ticket. CPU-bound: call from `spawn_blocking`.
pub fn render(booking: &BookingTickets) -> anyhow::Result<Vec<u8>> {
    document(booking, true)
}

/// The same PDF without its QR codes: what the text and the card alone cost, the floor that
/// `benches/ticket_pdf.rs` compares [`render`] with. Never a ticket: nothing on it scans.
#[doc(hidden)]
pub fn render_text_only(booking: &BookingTickets) -> anyhow::Result<Vec<u8>> {
    document(booking, false)
}

fn document(booking: &BookingTickets, with_qr: bool) -> anyhow::Result<Vec<u8>> {
    let reference = booking.reference();
    let mut doc = PdfDocument::new(&format!(
        "Tickets {reference} - {}",
        fit(&booking.event_title, 80)
    ));
    let now = printpdf::DateTime::now();
    doc.metadata.info.creation_date = now;
    doc.metadata.info.modification_date = now;
    doc.metadata.info.metadata_date = now;
    doc.metadata.info.producer = "Ticketing".to_string();
    doc.metadata.info.creator = "Ticketing".to_string();

    let date = booking
        .starts_at
        .format(format_description!(
            "[weekday repr:short] [day padding:none] [month repr:long] [year]"
        ))
        .context("formatting the date")?;
    let clock = booking
        .starts_at
        .format(format_description!("[hour]:[minute] UTC"))
        .context("formatting the time")?;
    let venue = if booking.venue_city.is_empty() {
        booking.venue_name.clone()
    } else {
        format!("{}, {}", booking.venue_name, booking.venue_city)
    };
    let count = booking.tickets.len();

    let mut pages = Vec::with_capacity(count);
    for (index, ticket) in booking.tickets.iter().enumerate() {
        let qr = if with_qr {
            let (form, side) = qr_form(&ticket.code)?;
            Some((doc.add_xobject(&form), side))
        } else {
            None
        };
        let mut ops = Vec::new();
        let bottom = CARD_TOP - CARD_H;

        // The card: a white body with a thin border, a dark header band.
        ops.push(Op::SaveGraphicsState);
        ops.push(Op::SetOutlineColor {
            col: rgb(0.75, 0.77, 0.80),
        });
        ops.push(Op::SetOutlineThickness { pt: Pt(0.8) });
        ops.push(Op::SetFillColor {
            col: rgb(0.97, 0.97, 0.98),
        });
        rect(
            &mut ops,
            CARD_X,
            bottom,
            CARD_W,
            CARD_H,
            PaintMode::FillStroke,
        );
        ops.push(Op::SetFillColor { col: accent() });
        rect(
            &mut ops,
            CARD_X,
            CARD_TOP - BAND_H,
            CARD_W,
            BAND_H,
            PaintMode::Fill,
        );
        ops.push(Op::RestoreGraphicsState);

        // Header: "ADMIT ONE", the title (up to two lines), the ticket's number.
        let white = rgb(1.0, 1.0, 1.0);
        text(
            &mut ops,
            CARD_X + 8.0,
            CARD_TOP - 7.5,
            BuiltinFont::HelveticaBold,
            8.0,
            rgb(0.72, 0.80, 0.95),
            "ADMIT ONE  -  E-TICKET",
        );
        text(
            &mut ops,
            CARD_X + CARD_W - 30.0,
            CARD_TOP - 7.5,
            BuiltinFont::Helvetica,
            8.0,
            rgb(0.72, 0.80, 0.95),
            &format!("Ticket {} of {count}", index + 1),
        );
        let title = two_lines(&booking.event_title, 40);
        let title_size = if title.len() > 1 { 15.0 } else { 20.0 };
        for (i, title_line) in title.iter().enumerate() {
            text(
                &mut ops,
                CARD_X + 8.0,
                CARD_TOP - 16.0 - (i as f32) * 7.0,
                BuiltinFont::HelveticaBold,
                title_size,
                white.clone(),
                title_line,
            );
        }

        // Details on the left, the QR on the right.
        let left = CARD_X + 8.0;
        let mid = CARD_X + 62.0;
        let mut y = CARD_TOP - BAND_H - 10.0;
        field(&mut ops, left, y, "DATE", &date, 12.0);
        field(&mut ops, mid, y, "DOORS / START", &clock, 12.0);
        y -= 16.0;
        field(&mut ops, left, y, "VENUE", &fit(&venue, 48), 12.0);
        y -= 18.0;
        field(
            &mut ops,
            left,
            y,
            "SEAT",
            &fit(&ticket.seat_label, 14),
            22.0,
        );
        field(&mut ops, mid, y, "CLASS", &fit(&ticket.class, 22), 13.0);
        y -= 18.0;
        let place = format!(
            "Section {}  -  Row {}  -  Seat {}",
            fit(&ticket.section, 20),
            ticket.row_no,
            ticket.seat_no
        );
        text(
            &mut ops,
            left,
            y - 0.5,
            BuiltinFont::Helvetica,
            9.0,
            ink(),
            &place,
        );
        y -= 10.0;
        field(
            &mut ops,
            left,
            y,
            "TICKET HOLDER",
            &fit(&booking.holder_name, 40),
            12.0,
        );
        field(
            &mut ops,
            CARD_X + 80.0,
            y,
            "PRICE",
            &money(ticket.price_minor, &ticket.currency),
            12.0,
        );

        // The QR: QR_SIZE mm square, right-aligned in the card's body.
        let qr_x = CARD_X + CARD_W - QR_SIZE - 8.0;
        let qr_y = CARD_TOP - BAND_H - 6.0 - QR_SIZE;
        if let Some((qr_id, side)) = qr {
            // One unit a module: scale `side` units to QR_SIZE.
            let scale = Pt::from(Mm(QR_SIZE)).0 / side as f32;
            ops.push(Op::UseXobject {
                id: qr_id,
                transform: XObjectTransform {
                    translate_x: Some(Mm(qr_x).into()),
                    translate_y: Some(Mm(qr_y).into()),
                    scale_x: Some(scale),
                    scale_y: Some(scale),
                    ..XObjectTransform::default()
                },
            });
        }
        text(
            &mut ops,
            qr_x + 6.0,
            qr_y - 4.5,
            BuiltinFont::Helvetica,
            7.0,
            muted(),
            "Scan at the entrance - admits once",
        );

        // The stub: a dashed tear line, the booking reference and the ticket id.
        let stub_y = bottom + 20.0;
        ops.push(Op::SaveGraphicsState);
        ops.push(Op::SetOutlineColor {
            col: rgb(0.65, 0.67, 0.70),
        });
        ops.push(Op::SetOutlineThickness { pt: Pt(0.6) });
        ops.push(Op::SetLineDashPattern {
            dash: printpdf::LineDashPattern::new(0.0, &[3.0, 2.0]),
        });
        line(&mut ops, (CARD_X, stub_y), (CARD_X + CARD_W, stub_y));
        ops.push(Op::RestoreGraphicsState);
        field(
            &mut ops,
            left,
            stub_y - 6.0,
            "BOOKING REFERENCE",
            &reference,
            13.0,
        );
        text(
            &mut ops,
            mid + 8.0,
            stub_y - 6.0,
            BuiltinFont::Helvetica,
            7.5,
            muted(),
            "TICKET ID",
        );
        text(
            &mut ops,
            mid + 8.0,
            stub_y - 11.5,
            BuiltinFont::Courier,
            8.5,
            ink(),
            &ticket.ticket_id.to_string(),
        );

        // Below the card: the small print.
        let notes = [
            "This ticket is valid for one entry. Its QR code is signed: copies and edits are",
            "detected at the door, and a code admits only the first time it is scanned.",
            &format!(
                "Booking {} - issued to {}.",
                booking.booking_id,
                fit(&booking.holder_email, 60)
            ),
        ];
        for (i, note) in notes.iter().enumerate() {
            text(
                &mut ops,
                CARD_X,
                bottom - 10.0 - (i as f32) * 4.5,
                BuiltinFont::Helvetica,
                8.0,
                muted(),
                note,
            );
        }
        pages.push(PdfPage::new(Mm(PAGE_W), Mm(PAGE_H), ops));
    }
    let options = PdfSaveOptions {
        // No images to optimize (the QR codes are vectors).
        image_optimization: None,
        ..PdfSaveOptions::default()
    };
    let mut warnings = Vec::new();
    let bytes = doc.with_pages(pages).save(&options, &mut warnings);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_titles_are_cut_into_two_lines() {
        assert_eq!(two_lines("Short", 40), ["Short"]);
        let lines = two_lines(&"word ".repeat(40), 20);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
        assert_eq!(money(5000, "EUR"), "50.00 EUR");
        assert_eq!(fit("abcdefghij", 6), "abc...");
    }

    #[test]
    fn bookings_made_in_the_same_instant_get_different_references() {
        let booking = |id| BookingTickets {
            booking_id: id,
            user_id: UserId::new(),
            event_id: EventId::new(),
            holder_name: String::new(),
            holder_email: String::new(),
            event_title: String::new(),
            venue_name: String::new(),
            venue_city: String::new(),
            starts_at: OffsetDateTime::UNIX_EPOCH,
            tickets: Vec::new(),
        };
        // v7 ids made together share their leading (timestamp) digits.
        let references: std::collections::HashSet<String> = (0..100)
            .map(|_| booking(BookingId::new()).reference())
            .collect();
        assert_eq!(references.len(), 100);
        assert!(references.iter().all(|r| r.len() == 8));
    }
}
