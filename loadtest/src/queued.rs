//! The smoke walk of a high-demand sale through the real processes: an organizer makes a
//! small event and turns demand mode on; the fan joins the waiting room until admitted,
//! holds a seat with the admission token, registers (202, queued), and the registration worker
//! confirms the booking. The event is cancelled afterwards so it leaves the public list.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use reqwest::Client;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::call;

pub async fn walk(
    base: &str,
    fan: &Client,
    fan_token: &str,
    fan_email: &str,
) -> anyhow::Result<()> {
    let organizer = Client::builder().cookie_store(true).build()?;
    let login = call(
        organizer
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "organizer@example.test", "password": "organizer-pass-123"})),
        200,
        "organizer login",
    )
    .await?;
    let org = login["access_token"]
        .as_str()
        .context("no organizer token")?;
    let venue = call(
        organizer.post(format!("{base}/api/venues")).bearer_auth(org).json(&json!({
            "name": "Smoke hall", "city": "Oslo",
            "layout": {"kind": "grid", "sections": [{"name": "A", "rows": 1, "seats_per_row": 5}]}
        })),
        201,
        "smoke venue",
    )
    .await?;
    let now = OffsetDateTime::now_utc();
    let event = call(
        organizer
            .post(format!("{base}/api/events"))
            .bearer_auth(org)
            .json(&json!({
                "title": format!("Smoke high demand {}", now.unix_timestamp()),
                "venue_id": venue["id"],
                "starts_at": (now + time::Duration::days(1)).format(&Rfc3339)?,
                "sale_opens_at": (now - time::Duration::minutes(1)).format(&Rfc3339)?,
                "classes": [{"name": "Normal", "price": 5000, "currency": "EUR"}],
            })),
        201,
        "smoke event",
    )
    .await?;
    let id = event["id"].as_str().context("no event id")?.to_string();
    let result = match sell_one(base, fan, fan_token, &organizer, org, &id).await {
        Ok(()) => ticket_mail_arrives(fan_email).await,
        Err(err) => Err(err),
    };
    // Whatever happened, take the event off the public list.
    call(
        organizer
            .post(format!("{base}/api/events/{id}/cancel"))
            .bearer_auth(org),
        200,
        "cancel the smoke event",
    )
    .await?;
    result
}

async fn sell_one(
    base: &str,
    fan: &Client,
    fan_token: &str,
    organizer: &Client,
    org: &str,
    id: &str,
) -> anyhow::Result<()> {
    call(
        organizer
            .put(format!("{base}/api/events/{id}/demand-mode"))
            .bearer_auth(org)
            .json(&json!({"high_demand": true, "admit_per_minute": 6000, "max_active": 50})),
        200,
        "high demand on",
    )
    .await?;
    let joined = call(
        fan.post(format!("{base}/api/queue/{id}/join"))
            .bearer_auth(fan_token),
        200,
        "join the waiting room",
    )
    .await?;
    let queue_token = joined["queue_token"].as_str().context("no queue token")?;
    let mut status = joined.clone();
    let started = Instant::now();
    while status["state"] != "admitted" {
        ensure!(
            started.elapsed() < Duration::from_secs(20),
            "not admitted in 20 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        status = call(
            fan.get(format!("{base}/api/queue/{id}/status"))
                .header("X-Queue-Token", queue_token),
            200,
            "queue status",
        )
        .await?;
    }
    let admission = status["admission_token"]
        .as_str()
        .context("admitted without an admission token")?;
    let hold = call(
        fan.post(format!("{base}/api/events/{id}/holds"))
            .bearer_auth(fan_token)
            .header("X-Admission-Token", admission)
            .json(&json!({"class": "Normal", "quantity": 1})),
        201,
        "hold with the admission token",
    )
    .await?;
    let queued = call(
        fan.post(format!("{base}/api/events/{id}/registrations"))
            .bearer_auth(fan_token)
            .header("X-Admission-Token", admission)
            .json(&json!({"hold_id": hold["hold_id"]})),
        202,
        "queued registration",
    )
    .await?;
    let booking = queued["booking_id"].as_str().context("no booking id")?;
    // One admission, one order: the 202 spent it, so the same token holds nothing more.
    let refused = call(
        fan.post(format!("{base}/api/events/{id}/holds"))
            .bearer_auth(fan_token)
            .header("X-Admission-Token", admission)
            .json(&json!({"class": "Normal", "quantity": 1})),
        403,
        "a second hold on a spent admission",
    )
    .await?;
    ensure!(
        refused["error"] == "invalid_admission",
        "a spent admission was refused for the wrong reason: {refused}"
    );
    let started = Instant::now();
    loop {
        let state: Value = fan
            .get(format!("{base}/api/bookings/{booking}"))
            .bearer_auth(fan_token)
            .send()
            .await?
            .json()
            .await?;
        match state["status"].as_str() {
            Some("confirmed") => break,
            Some("pending") if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => bail!("the queued booking did not confirm: {state}"),
        }
    }
    println!("ok  queued booking confirmed by the worker");
    Ok(())
}

/// With `MAIL_DIR` set (the dev stack's SMTP sink writes one `.eml` per message there), waits
/// for the notifier's mail to the fan with the tickets' PDF attached.
async fn ticket_mail_arrives(fan_email: &str) -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os("MAIL_DIR") else {
        println!("--  MAIL_DIR not set: not checking the ticket mail");
        return Ok(());
    };
    let started = Instant::now();
    // The walk takes seconds; older files are earlier runs' mail and are not opened.
    let since = std::time::SystemTime::now() - Duration::from_secs(600);
    while started.elapsed() < Duration::from_secs(20) {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir:?}"))? {
            let entry = entry?;
            if crate::checker::written_before(&entry, since) {
                continue;
            }
            let mail = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if mail.contains(fan_email) && mail.contains("Content-Type: application/pdf") {
                println!("ok  ticket mail with the PDF in the SMTP sink");
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("no ticket mail to {fan_email} in {dir:?} within 20 s")
}
