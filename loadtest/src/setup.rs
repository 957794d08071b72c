//! What a load run needs before the first fan arrives: the organizer's venue and event, and
//! the fans themselves.
//!
//! Fans are not signed up through `POST /api/auth/register`: hashing 100,000 passwords with
//! argon2 would take longer than the sale. Their user rows are inserted in bulk into Postgres
//! (bookings reference `users (id)`, and the notifier mails `users.email`), with a password
//! hash no login can match, and their access tokens are signed directly with the stack's access
//! key (`$KEYS_DIR/access.key`), exactly as the ticketing API would sign them at login.

use std::{path::Path, time::Duration};

use anyhow::{Context, ensure};
use reqwest::Client;
use serde_json::{Value, json};
use shared::{
    domain::Role,
    ids::UserId,
    tokens::{AccessClaims, KeyPurpose, TokenKeys},
};
use sqlx::PgPool;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use uuid::Uuid;

/// One fan of the run: who they are and the token they call with.
#[derive(Debug, Clone)]
pub struct Fan {
    pub id: UserId,
    pub token: String,
}

/// The event a run sells.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub capacity: u64,
    /// Class names, best first.
    pub classes: Vec<String>,
    pub sale_opens_at: OffsetDateTime,
    pub hold_seconds: u64,
}

pub struct Organizer {
    pub client: Client,
    pub token: String,
}

pub async fn organizer(base: &str, email: &str, password: &str) -> anyhow::Result<Organizer> {
    let client = Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let login = expect(
        client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": email, "password": password})),
        200,
        "organizer login",
    )
    .await?;
    let token = login["access_token"]
        .as_str()
        .context("no organizer token")?
        .to_string();
    Ok(Organizer { client, token })
}

/// The venue's layout for `seats` seats: rows of 50 (fewer when the event is smaller), in
/// sections of at most 40 rows. With more than one section, the first is the class `VIP` and
/// the rest `Normal`.
pub fn layout(seats: u64) -> (Value, Vec<Value>) {
    let per_row = seats.clamp(1, 50);
    let rows = seats.div_ceil(per_row);
    let mut sections = Vec::new();
    let mut left = rows;
    let mut n = 0;
    while left > 0 {
        let here = left.min(40);
        sections.push(json!({
            "name": section_name(n), "rows": here, "seats_per_row": per_row
        }));
        left -= here;
        n += 1;
    }
    let classes = if sections.len() > 1 {
        vec![
            json!({"name": "VIP", "price": 15000, "currency": "EUR", "sections": [section_name(0)]}),
            json!({"name": "Normal", "price": 5000, "currency": "EUR"}),
        ]
    } else {
        vec![json!({"name": "Normal", "price": 5000, "currency": "EUR"})]
    };
    (json!({"kind": "grid", "sections": sections}), classes)
}

fn section_name(n: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if n < letters.len() {
        (letters[n] as char).to_string()
    } else {
        format!("S{n}")
    }
}

/// Creates a venue and an event of `seats` seats whose sale opens `opens_in` from now.
pub async fn event(
    base: &str,
    org: &Organizer,
    title: &str,
    seats: u64,
    opens_in: Duration,
    hold_seconds: u64,
) -> anyhow::Result<Event> {
    let (layout, classes) = layout(seats);
    let venue = expect(
        org.client
            .post(format!("{base}/api/venues"))
            .bearer_auth(&org.token)
            .json(&json!({"name": format!("{title} hall"), "city": "Oslo", "layout": layout})),
        201,
        "load-test venue",
    )
    .await?;
    let now = OffsetDateTime::now_utc();
    let opens = now + opens_in;
    let created = expect(
        org.client
            .post(format!("{base}/api/events"))
            .bearer_auth(&org.token)
            .json(&json!({
                "title": title,
                "venue_id": venue["id"],
                "starts_at": (now + time::Duration::days(30)).format(&Rfc3339)?,
                "sale_opens_at": opens.format(&Rfc3339)?,
                "classes": classes,
                "max_seats_per_order": 6,
                "hold_seconds": hold_seconds,
            })),
        201,
        "load-test event",
    )
    .await?;
    let capacity = created["capacity"]
        .as_u64()
        .context("event without capacity")?;
    let names = classes
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    Ok(Event {
        id: created["id"].as_str().context("no event id")?.to_string(),
        capacity,
        classes: names,
        sale_opens_at: opens,
        hold_seconds,
    })
}

pub async fn demand_mode(
    base: &str,
    org: &Organizer,
    event: &str,
    admit_per_minute: u64,
    max_active: u64,
) -> anyhow::Result<()> {
    expect(
        org.client
            .put(format!("{base}/api/events/{event}/demand-mode"))
            .bearer_auth(&org.token)
            .json(&json!({"high_demand": true, "admit_per_minute": admit_per_minute, "max_active": max_active})),
        200,
        "high demand on",
    )
    .await?;
    Ok(())
}

/// Inserts `count` fan accounts for run `run` in bulk and signs an access token for each.
pub async fn fans(
    db: &PgPool,
    keys_dir: &Path,
    run: &str,
    count: usize,
    token_ttl: Duration,
) -> anyhow::Result<Vec<Fan>> {
    let keys = TokenKeys::load(keys_dir, KeyPurpose::Access, true)
        .with_context(|| format!("loading the access key from {}", keys_dir.display()))?;
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    for (chunk_no, chunk) in ids.chunks(10_000).enumerate() {
        let emails: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, _)| format!("lt-{run}-{}@loadtest.test", chunk_no * 10_000 + i))
            .collect();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash)
             SELECT id, email, 'Load-test fan', '!loadtest: no password'
             FROM unnest($1::uuid[], $2::text[]) AS t(id, email)",
        )
        .bind(chunk)
        .bind(&emails)
        .execute(db)
        .await
        .context("inserting the fans")?;
    }
    // A bulk load: give the planner its statistics now rather than when autovacuum comes by.
    sqlx::query("ANALYZE users")
        .execute(db)
        .await
        .context("analyzing users")?;
    let signed = tokio::task::spawn_blocking(move || {
        ids.into_iter()
            .map(|id| {
                let id = UserId::from(id);
                let token = keys.sign(
                    AccessClaims {
                        sub: id,
                        role: Role::Fan,
                    },
                    token_ttl,
                )?;
                Ok(Fan { id, token })
            })
            .collect::<Result<Vec<_>, shared::tokens::TokenError>>()
    })
    .await??;
    Ok(signed)
}

pub async fn expect(
    request: reqwest::RequestBuilder,
    expected: u16,
    step: &str,
) -> anyhow::Result<Value> {
    let response = request
        .send()
        .await
        .with_context(|| format!("{step}: request"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("{step}: body"))?;
    ensure!(
        status.as_u16() == expected,
        "{step}: expected {expected}, got {status}: {body}"
    );
    Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
}
