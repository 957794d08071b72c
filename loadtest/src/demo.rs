//! The demo data of `infra/dev up`: an approved organizer, a fan, a grid venue and an event on
//! sale now, made through the public API like any client would. Running it again changes
//! nothing: whatever exists is reused.

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

const ORGANIZER: (&str, &str) = ("organizer@example.test", "organizer-pass-123");
const FAN: (&str, &str) = ("fan@example.test", "fan-pass-123");
const EVENT_TITLE: &str = "Demo night: The Flash Sale";

pub async fn run(base: &str, admin_email: &str, admin_password: &str) -> anyhow::Result<()> {
    let search =
        reqwest::Url::parse_with_params(&format!("{base}/api/events"), &[("q", EVENT_TITLE)])?;
    let existing: Value = Client::new().get(search).send().await?.json().await?;
    if existing["total"].as_i64().unwrap_or(0) > 0 {
        println!("demo event exists: {}", existing["items"][0]["id"]);
        return Ok(());
    }

    ensure_account(base, FAN, "Demo Fan").await?;
    ensure_account(base, ORGANIZER, "Demo Organizer").await?;
    let organizer = browser();
    let token = login(&organizer, base, ORGANIZER).await?;
    let me: Value = organizer
        .get(format!("{base}/api/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let token = if me["role"] == "organizer" {
        token
    } else {
        approve(base, admin_email, admin_password, &organizer, &token, &me).await?
    };

    let venue = crate::call(
        organizer
            .post(format!("{base}/api/venues"))
            .bearer_auth(&token)
            .json(&json!({
                "name": "Demo Arena",
                "city": "Oslo",
                "layout": {"kind": "grid", "sections": [
                    {"name": "A", "rows": 10, "seats_per_row": 20},
                    {"name": "B", "rows": 15, "seats_per_row": 24},
                    {"name": "C", "rows": 15, "seats_per_row": 24}
                ]}
            })),
        201,
        "demo venue",
    )
    .await?;
    let now = OffsetDateTime::now_utc();
    let event = crate::call(
        organizer
            .post(format!("{base}/api/events"))
            .bearer_auth(&token)
            .json(&json!({
                "title": EVENT_TITLE,
                "description": "A demo event on sale now: pick seats on the map or best available.",
                "venue_id": venue["id"],
                "starts_at": (now + time::Duration::days(30)).format(&Rfc3339)?,
                "sale_opens_at": (now - time::Duration::minutes(1)).format(&Rfc3339)?,
                "classes": [
                    {"name": "VIP", "price": 15000, "currency": "EUR", "sections": ["A"]},
                    {"name": "Normal", "price": 5000, "currency": "EUR"}
                ],
                "max_seats_per_order": 6,
                "hold_seconds": 600
            })),
        201,
        "demo event",
    )
    .await?;
    println!(
        "demo event {} on sale; log in as {} / {} (fan) or {} / {} (organizer)",
        event["id"], FAN.0, FAN.1, ORGANIZER.0, ORGANIZER.1
    );
    Ok(())
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client builds")
}

async fn ensure_account(
    base: &str,
    (email, password): (&str, &str),
    name: &str,
) -> anyhow::Result<()> {
    let response = Client::new()
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": email, "password": password, "name": name}))
        .send()
        .await?;
    let status = response.status();
    ensure!(
        status == StatusCode::CREATED || status == StatusCode::CONFLICT,
        "registering {email}: {status} {}",
        response.text().await.unwrap_or_default()
    );
    Ok(())
}

async fn login(
    client: &Client,
    base: &str,
    (email, password): (&str, &str),
) -> anyhow::Result<String> {
    let body = crate::call(
        client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": email, "password": password})),
        200,
        "demo login",
    )
    .await?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .context("login gave no token")
}

/// Applies as an organizer, has the admin approve, and returns a token with the new role.
async fn approve(
    base: &str,
    admin_email: &str,
    admin_password: &str,
    organizer: &Client,
    token: &str,
    me: &Value,
) -> anyhow::Result<String> {
    if me["organizer_status"] != "pending" {
        crate::call(
            organizer
                .post(format!("{base}/api/organizer/applications"))
                .bearer_auth(token)
                .json(&json!({"company": "Demo Productions", "details": "The demo organizer."})),
            201,
            "organizer application",
        )
        .await?;
    }
    let admin = browser();
    let admin_token = login(&admin, base, (admin_email, admin_password)).await?;
    let user_id = me["id"].as_str().context("me has no id")?;
    crate::call(
        admin
            .post(format!("{base}/api/admin/organizers/{user_id}/approve"))
            .bearer_auth(&admin_token),
        200,
        "approve organizer",
    )
    .await?;
    let refreshed = crate::call(
        organizer.post(format!("{base}/api/auth/refresh")),
        200,
        "refresh",
    )
    .await?;
    refreshed["access_token"]
        .as_str()
        .map(str::to_string)
        .context("refresh gave no token")
}
