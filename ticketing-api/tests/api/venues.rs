//! Venues: grid and SVG layouts, their limits, the SVG safety check, who may see what.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use testkit::api::{
    TestApp, assert_error, create_venue, grid_venue, organizer, scalar, send_as, spawn,
};

const NS: &str = r#"xmlns="http://www.w3.org/2000/svg""#;

/// Rows a venue request could have touched.
async fn snapshot(app: &TestApp) -> [i64; 2] {
    [
        scalar(app, "SELECT count(*) FROM venues").await,
        scalar(app, "SELECT count(*) FROM audit_log").await,
    ]
}

fn svg_venue(svg: &str, seats: Value) -> Value {
    json!({"name": "Hall", "city": "Bergen", "layout": {"kind": "svg", "svg": svg, "seats": seats}})
}

fn one_seat() -> Value {
    json!([{"label": "FLOOR-1-1", "x": 10, "y": 20}])
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_organizer_creates_a_grid_venue_and_reads_it_back(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = create_venue(
        &app,
        &token,
        &json!({"name": " Arena ", "city": "Oslo", "layout": {"kind": "grid", "sections": [
            {"name": "A", "rows": 20, "seats_per_row": 30},
            {"name": "B_2", "rows": 2, "seats_per_row": 5},
        ]}}),
    )
    .await;
    assert_eq!(venue["name"], "Arena");
    assert_eq!(venue["city"], "Oslo");
    assert_eq!(venue["capacity"], 610);
    assert_eq!(venue["sections"], json!(["A", "B_2"]));
    assert_eq!(venue["layout"]["kind"], "grid");
    assert_eq!(venue["layout"]["sections"][1]["seats_per_row"], 5);
    let id = venue["id"].as_str().expect("id");

    let read: Value = app.get_json_as(&format!("/api/venues/{id}"), &token).await;
    assert_eq!(read, venue);

    let list: Value = app.get_json_as("/api/venues", &token).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id);
    assert_eq!(list["items"][0]["layout_kind"], "grid");
    assert!(list["items"][0].get("layout").is_none());

    let audited = sqlx::query_as::<_, (String, String)>(
        "SELECT action, target_id FROM audit_log WHERE action = 'venue.create'",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    assert_eq!(audited, [("venue.create".to_string(), id.to_string())]);

    // A grid venue has no drawing to serve.
    let svg = app.get(&format!("/api/venues/{id}/layout.svg")).await;
    assert_error(svg, StatusCode::NOT_FOUND, "not_found").await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_svg_venue_is_stored_and_its_drawing_served_with_a_strict_csp(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let drawing = format!(
        r##"<?xml version="1.0" encoding="UTF-8"?><svg {NS} viewBox="0 0 100 100"><defs><linearGradient id="g"><stop offset="0" stop-color="#fff"/></linearGradient></defs><rect width="100" height="10" fill="url(#g)"/><text x="40" y="8">STAGE &amp; PIT</text></svg>"##
    );
    let venue = create_venue(
        &app,
        &token,
        &svg_venue(
            &drawing,
            json!([
                {"label": "FLOOR-1-1", "x": 10, "y": 20},
                {"label": "FLOOR-1-2", "x": 12.5, "y": 20},
                {"label": "BOX_7", "x": 90, "y": 90, "section": "BOXES"},
            ]),
        ),
    )
    .await;
    assert_eq!(venue["capacity"], 3);
    assert_eq!(venue["sections"], json!(["FLOOR", "BOXES"]));
    assert_eq!(venue["layout"]["seats"][0]["section"], "FLOOR");
    assert_eq!(venue["layout"]["seats"][1]["x"], 12.5);
    let id = venue["id"].as_str().expect("id");

    // Public: an <img> cannot send a bearer token.
    let served = app.get(&format!("/api/venues/{id}/layout.svg")).await;
    assert_eq!(served.status(), StatusCode::OK);
    let headers = served.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; style-src 'unsafe-inline'"
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(served.text().await.expect("body"), drawing);

    let unknown = app
        .get(&format!("/api/venues/{}/layout.svg", uuid::Uuid::new_v4()))
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn unsafe_svgs_are_refused_and_nothing_is_stored(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let before = snapshot(&app).await;
    let body = |inner: &str| format!(r#"<svg {NS}>{inner}</svg>"#);
    let unsafe_svgs = [
        (
            "script element",
            body("<script>alert(document.cookie)</script>"),
        ),
        (
            "onload attribute",
            format!(r#"<svg {NS} onload="alert(1)"/>"#),
        ),
        ("onclick on a child", body(r#"<rect onclick="alert(1)"/>"#)),
        (
            "javascript: href",
            body(r##"<use href="javascript:alert(1)"/>"##),
        ),
        (
            "encoded javascript: href",
            body(r##"<use href="&#106;avascript:alert(1)"/>"##),
        ),
        (
            "external href",
            body(r##"<use href="https://evil.test/sprite.svg#seat"/>"##),
        ),
        (
            "external xlink:href",
            format!(
                r#"<svg {NS} xmlns:xlink="http://www.w3.org/1999/xlink"><use xlink:href="//evil.test/a#b"/></svg>"#
            ),
        ),
        (
            "foreignObject",
            body(
                r#"<foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="https://evil.test"/></foreignObject>"#,
            ),
        ),
        (
            "DOCTYPE with entity",
            format!(r#"<!DOCTYPE svg [<!ENTITY boom "boom">]><svg {NS}><text>&boom;</text></svg>"#),
        ),
        (
            "external entity",
            format!(
                r#"<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><svg {NS}><text>&xxe;</text></svg>"#
            ),
        ),
        (
            "stylesheet instruction",
            format!(r#"<?xml-stylesheet href="https://evil.test/x.css"?><svg {NS}/>"#),
        ),
        (
            "style element",
            body("<style>@import url(https://evil.test/x.css);</style>"),
        ),
        (
            "url() to outside",
            body(r#"<rect style="fill: url(https://evil.test/track)"/>"#),
        ),
        (
            "image element",
            body(r#"<image href="https://evil.test/x.png"/>"#),
        ),
        (
            "anchor element",
            body(r#"<a href="https://evil.test"><rect/></a>"#),
        ),
        (
            "animate element",
            body(r#"<animate attributeName="href" to="javascript:alert(1)"/>"#),
        ),
        ("not xml", "<svg><g></svg>".to_string()),
        ("an html page", "<html><body>hi</body></html>".to_string()),
    ];
    for (what, svg) in unsafe_svgs {
        let response = app
            .post_as("/api/venues", &token, &svg_venue(&svg, one_seat()))
            .await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {text}");
        let error: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(error["error"], "unsafe_svg", "{what}: {text}");
    }

    // Over 512 KiB (but under the 1 MiB body limit): refused by size.
    let huge = body(&format!("<desc>{}</desc>", "x".repeat(600 * 1024)));
    let response = app
        .post_as("/api/venues", &token, &svg_venue(&huge, one_seat()))
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_layout").await;
    // Over the body limit: refused before it is read.
    let enormous = body(&format!("<desc>{}</desc>", "x".repeat(2 * 1024 * 1024)));
    let response = app
        .post_as("/api/venues", &token, &svg_venue(&enormous, one_seat()))
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn bad_layouts_and_fields_are_422_and_change_nothing(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let before = snapshot(&app).await;
    let grid = |sections: Value| json!({"name": "Arena", "city": "Oslo", "layout": {"kind": "grid", "sections": sections}});
    let section = |name: &str, rows: i64, seats: i64| json!({"name": name, "rows": rows, "seats_per_row": seats});
    let fifty_one: Vec<Value> = (0..51).map(|i| section(&format!("S{i}"), 1, 1)).collect();
    let plain = format!("<svg {NS}/>");
    let cases = [
        (
            "empty name",
            json!({"name": "  ", "layout": {"kind": "grid", "sections": [section("A", 1, 1)]}}),
            "invalid_field",
        ),
        (
            "long name",
            json!({"name": "n".repeat(201), "layout": {"kind": "grid", "sections": [section("A", 1, 1)]}}),
            "invalid_field",
        ),
        (
            "control character in name",
            json!({"name": "Bad\u{7}", "layout": {"kind": "grid", "sections": [section("A", 1, 1)]}}),
            "invalid_field",
        ),
        (
            "long city",
            json!({"name": "A", "city": "c".repeat(201), "layout": {"kind": "grid", "sections": [section("A", 1, 1)]}}),
            "invalid_field",
        ),
        ("no sections", grid(json!([])), "invalid_layout"),
        ("51 sections", grid(json!(fifty_one)), "invalid_layout"),
        (
            "dash in section",
            grid(json!([section("A-B", 1, 1)])),
            "invalid_layout",
        ),
        (
            "space in section",
            grid(json!([section("A B", 1, 1)])),
            "invalid_layout",
        ),
        (
            "empty section name",
            grid(json!([section("", 1, 1)])),
            "invalid_layout",
        ),
        (
            "21-character section",
            grid(json!([section(&"S".repeat(21), 1, 1)])),
            "invalid_layout",
        ),
        (
            "duplicate section",
            grid(json!([section("A", 1, 1), section("A", 2, 2)])),
            "invalid_layout",
        ),
        (
            "zero rows",
            grid(json!([section("A", 0, 1)])),
            "invalid_layout",
        ),
        (
            "negative seats",
            grid(json!([section("A", 1, -5)])),
            "invalid_layout",
        ),
        (
            "1001 rows",
            grid(json!([section("A", 1001, 1)])),
            "invalid_layout",
        ),
        (
            "1001 seats",
            grid(json!([section("A", 1, 1001)])),
            "invalid_layout",
        ),
        (
            "over 200,000 seats",
            grid(json!([section("A", 1000, 150), section("B", 1000, 51)])),
            "invalid_layout",
        ),
        (
            "svg without seats",
            svg_venue(&plain, json!([])),
            "invalid_layout",
        ),
        (
            "duplicate label",
            svg_venue(
                &plain,
                json!([{"label": "A-1-1", "x": 1, "y": 1}, {"label": "A-1-1", "x": 2, "y": 1}]),
            ),
            "invalid_layout",
        ),
        (
            "bad label",
            svg_venue(&plain, json!([{"label": "A 1", "x": 1, "y": 1}])),
            "invalid_layout",
        ),
        (
            "41-character label",
            svg_venue(&plain, json!([{"label": "a".repeat(41), "x": 1, "y": 1}])),
            "invalid_layout",
        ),
        (
            "negative x",
            svg_venue(&plain, json!([{"label": "A-1", "x": -1, "y": 1}])),
            "invalid_layout",
        ),
        (
            "huge y",
            svg_venue(&plain, json!([{"label": "A-1", "x": 1, "y": 1e7}])),
            "invalid_layout",
        ),
        (
            "bad section",
            svg_venue(
                &plain,
                json!([{"label": "A-1", "x": 1, "y": 1, "section": "a-b"}]),
            ),
            "invalid_layout",
        ),
        (
            "label starting with a dash",
            svg_venue(&plain, json!([{"label": "-1-1", "x": 1, "y": 1}])),
            "invalid_layout",
        ),
        (
            "unknown kind",
            json!({"name": "A", "layout": {"kind": "circle", "sections": []}}),
            "invalid_body",
        ),
        (
            "fractional rows",
            grid(json!([{"name": "A", "rows": 1.5, "seats_per_row": 1}])),
            "invalid_body",
        ),
        ("no layout", json!({"name": "A"}), "invalid_body"),
        (
            "x as a string",
            svg_venue(&plain, json!([{"label": "A-1", "x": "1", "y": 1}])),
            "invalid_body",
        ),
    ];
    for (what, body, code) in cases {
        let response = app.post_as("/api/venues", &token, &body).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {text}");
        let error: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(error["error"], code, "{what}: {text}");
    }
    // The largest grid allowed is fine.
    let biggest = app
        .post_as(
            "/api/venues",
            &token,
            &grid(json!([section("A", 1000, 150), section("B", 1000, 50)])),
        )
        .await;
    assert_eq!(biggest.status(), StatusCode::CREATED);
    let after = snapshot(&app).await;
    assert_eq!(after, [before[0] + 1, before[1] + 1]);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn fans_get_403_and_strangers_401_on_venue_endpoints(db: PgPool) {
    let app = spawn(db).await;
    let (org, _) = organizer(&app).await;
    let venue = grid_venue(&app, &org, &[("A", 1, 1)]).await;
    let (_, fan, _) = app.fan("fan@example.test").await;
    let before = snapshot(&app).await;
    let body = json!({"name": "Mine", "layout": {"kind": "grid", "sections": [
        {"name": "A", "rows": 1, "seats_per_row": 1}]}});
    assert_error(
        app.post_as("/api/venues", &fan, &body).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    for path in ["/api/venues".to_string(), format!("/api/venues/{venue}")] {
        assert_error(
            app.get_as(&path, &fan).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let anonymous = app.get(&path).await;
        assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    assert_error(
        app.post("/api/venues", &body).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn another_organizers_venue_is_not_found_but_admins_see_every_venue(db: PgPool) {
    let app = spawn(db).await;
    let (mine, _) = organizer(&app).await;
    let (theirs, _) = organizer(&app).await;
    let my_venue = grid_venue(&app, &mine, &[("A", 1, 1)]).await;
    grid_venue(&app, &theirs, &[("B", 2, 2)]).await;

    assert_error(
        app.get_as(&format!("/api/venues/{my_venue}"), &theirs)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get_as(&format!("/api/venues/{}", uuid::Uuid::new_v4()), &mine)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let their_list: Value = app.get_json_as("/api/venues", &theirs).await;
    assert_eq!(their_list["total"], 1);
    assert_eq!(their_list["items"][0]["capacity"], 4);

    let admin = app.admin_token().await;
    let all: Value = app
        .get_json_as("/api/venues?per_page=1&page=2", &admin)
        .await;
    assert_eq!(all["total"], 2);
    assert_eq!(all["items"].as_array().expect("items").len(), 1);
    let read = app.get_as(&format!("/api/venues/{my_venue}"), &admin).await;
    assert_eq!(read.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn malformed_requests_on_venue_endpoints_are_4xx(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let before = snapshot(&app).await;
    for (body, status, code) in [
        (
            &b"{\"name\": "[..],
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (&b"[1, 2]"[..], StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (&b"{}"[..], StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            &br#"{"name": 5, "layout": "grid"}"#[..],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            // A number JSON cannot hold (no infinities in JSON).
            &br#"{"name": "A", "layout": {"kind": "svg", "svg": "<svg/>", "seats": [{"label": "A-1", "x": 1e400, "y": 1}]}}"#[..],
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ] {
        let response = app
            .client
            .post(app.url("/api/venues"))
            .bearer_auth(&token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .expect("sent");
        assert_error(response, status, code).await;
    }
    for id in ["not-a-uuid", "1", "%27%20OR%201%3D1--"] {
        assert_error(
            app.get_as(&format!("/api/venues/{id}"), &token).await,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        )
        .await;
        let svg = app.get(&format!("/api/venues/{id}/layout.svg")).await;
        assert_error(svg, StatusCode::BAD_REQUEST, "invalid_path").await;
    }
    for query in ["page=0", "per_page=101"] {
        assert_error(
            app.get_as(&format!("/api/venues?{query}"), &token).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pagination",
        )
        .await;
    }
    assert_error(
        send_as(&app, Method::DELETE, "/api/venues", &token, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_openapi_document_describes_venue_and_event_endpoints(db: PgPool) {
    let app = spawn(db).await;
    let doc: Value = app.get_json("/api/openapi.json").await;
    for (path, methods) in [
        ("/api/venues", &["get", "post"][..]),
        ("/api/venues/{id}", &["get"][..]),
        ("/api/venues/{id}/layout.svg", &["get"][..]),
        ("/api/events", &["get", "post"][..]),
        ("/api/events/{id}", &["get", "patch", "delete"][..]),
        ("/api/events/{id}/cancel", &["post"][..]),
    ] {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is not documented"
            );
        }
    }
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tags.contains(&"venues") && tags.contains(&"events"),
        "{tags:?}"
    );
    assert!(doc["components"]["schemas"]["Layout"].is_object());
}
