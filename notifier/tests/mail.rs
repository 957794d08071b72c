//! Booking emails end to end: events published to the real broker, the notifier consuming
//! them, a fake SMTP server on port 0 receiving the mail.

mod support;

use std::time::Duration;

use shared::tokens::{KeyPurpose, KeySet, TicketClaims, TokenKeys};
use sqlx::PgPool;
use support::{CONFIRMED, REJECTED, smtp::FakeSmtp};
use testkit::pdf;

const WAIT: Duration = Duration::from_secs(20);

async fn start(db: &PgPool, smtp: &FakeSmtp) -> (notifier::Config, notifier::Stopper) {
    let config = support::config(db, smtp.port);
    let server = notifier::build_with(&config, TokenKeys::generate(KeyPurpose::Access))
        .await
        .expect("builds");
    let stopper = server.stopper();
    tokio::spawn(server.run_until(std::future::pending()));
    (config, stopper)
}

async fn deliveries(db: &PgPool) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM email_deliveries")
        .fetch_one(db)
        .await
        .expect("count");
    n
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_confirmed_booking_mails_its_tickets_pdf_once_even_when_redelivered(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    let (config, stopper) = start(&db, &smtp).await;
    let keys = KeySet::generate();
    let booking = support::confirmed_booking(&db, &keys, 2).await;
    let to = support::address(booking.user_id);

    // The same event twice, as an outbox relay that died before marking it would publish it.
    support::publish(&config.amqp, CONFIRMED, &booking).await;
    support::publish(&config.amqp, CONFIRMED, &booking).await;

    let mails = smtp.wait_for(&to, 1, WAIT).await;
    assert_eq!(mails.len(), 1, "one mail");
    assert!(
        support::eventually(WAIT, || async { deliveries(&db).await == 1 }).await,
        "recorded"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.mails_to(&to).len(), 1, "the redelivery sent nothing");

    let mail = &mails[0];
    assert_eq!(mail.from, "tickets@example.test");
    let subject = mail.header("Subject").expect("subject");
    assert!(subject.contains("Harbour Jazz Night"), "{subject}");
    assert_eq!(
        mail.header("Message-ID").expect("message id"),
        format!("<booking-{}@tickets.notifier>", booking.booking_id)
    );
    let text = String::from_utf8(mail.part("text/plain").expect("plain text")).expect("utf8");
    assert!(text.contains("A-1-1") && text.contains("A-1-2"), "{text}");
    let html = String::from_utf8(mail.part("text/html").expect("html")).expect("utf8");
    assert!(html.contains("Harbour Jazz Night"), "{html}");

    let attachment = mail.part("application/pdf").expect("the PDF attached");
    assert!(attachment.starts_with(b"%PDF-"));
    let content = pdf::pdf_text(&attachment);
    assert!(content.contains("Harbour Jazz Night"), "{content}");
    assert!(
        content.contains("A-1-1") && content.contains("A-1-2"),
        "{content}"
    );
    assert!(content.contains("Frida Fan"), "{content}");
    let codes = pdf::qr_codes(&attachment, 2);
    assert_eq!(codes.len(), 1);
    let claims = keys
        .ticket
        .verifying_only()
        .verify::<TicketClaims>(&codes[0])
        .expect("the QR verifies")
        .claims;
    assert_eq!(claims.tid, booking.tickets[1].ticket_id);

    support::finish(&config, &[&stopper]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_rejected_booking_gets_a_short_mail(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    let (config, stopper) = start(&db, &smtp).await;
    let keys = KeySet::generate();
    let booking = support::confirmed_booking(&db, &keys, 1).await;
    let rejected = support::rejected_for(&booking);
    support::publish(&config.amqp, REJECTED, &rejected).await;

    let mails = smtp
        .wait_for(&support::address(booking.user_id), 1, WAIT)
        .await;
    assert_eq!(mails.len(), 1);
    let subject = mails[0].header("Subject").expect("subject");
    assert!(subject.contains("did not go through"), "{subject}");
    let text = String::from_utf8(mails[0].part("text/plain").expect("text")).expect("utf8");
    assert!(text.contains("seats_already_sold"), "{text}");
    assert!(mails[0].part("application/pdf").is_none());
    support::finish(&config, &[&stopper]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_smtp_outage_delays_the_mail_which_then_arrives_once(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    smtp.set_up(false);
    let (config, stopper) = start(&db, &smtp).await;
    let keys = KeySet::generate();
    let booking = support::confirmed_booking(&db, &keys, 1).await;
    let to = support::address(booking.user_id);
    support::publish(&config.amqp, CONFIRMED, &booking).await;

    // Down: the notifier keeps trying, nothing is recorded.
    assert!(
        support::eventually(WAIT, || async { smtp.refused() >= 2 }).await,
        "the notifier retries"
    );
    assert_eq!(deliveries(&db).await, 0);
    assert!(smtp.mails().is_empty());

    smtp.set_up(true);
    let mails = smtp.wait_for(&to, 1, Duration::from_secs(40)).await;
    assert_eq!(mails.len(), 1, "delivered after the outage");
    assert!(support::eventually(WAIT, || async { deliveries(&db).await == 1 }).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.mails_to(&to).len(), 1, "exactly once");
    support::finish(&config, &[&stopper]).await;
}
