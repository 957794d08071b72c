//! Users and tokens without the sign-up flow: rows written straight to Postgres (no password
//! hash to compute: hundreds of users in a moment) and tokens signed with the test's keys.
//!
//! A minted user cannot log in (its hash is not a hash); tests of logging in sign up through
//! the API instead (`api::TestApp::register`).

use std::time::Duration;

use shared::{
    domain::Role,
    ids::{EventId, UserId},
    tokens::{AccessClaims, AdmissionClaims, KeySet, TokenKeys},
};
use sqlx::PgPool;

/// How long a minted access token lives (the API's default access TTL).
pub const ACCESS_TTL: Duration = Duration::from_secs(900);
/// How long a minted admission token lives (the waiting room's admitted window is longer).
pub const ADMISSION_TTL: Duration = Duration::from_secs(300);

/// A user's address: `<id>@example.test`.
pub fn address(user: UserId) -> String {
    format!("{user}@example.test")
}

/// A user of `role` named "Minted", with an access token signed by `keys`.
pub async fn mint(db: &PgPool, keys: &KeySet, role: Role) -> (UserId, String) {
    mint_named(db, keys, role, "Minted").await
}

/// [`mint`] with a name (the name a fan's ticket or mail shows).
pub async fn mint_named(db: &PgPool, keys: &KeySet, role: Role, name: &str) -> (UserId, String) {
    let id = UserId::new();
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, role)
         VALUES ($1, $2, $3, 'not-a-hash', $4)",
    )
    .bind(id)
    .bind(address(id))
    .bind(name)
    .bind(role.as_str())
    .execute(db)
    .await
    .expect("a minted user");
    (id, access_token(&keys.access, id, role))
}

/// `n` users of `role` in one statement (no round trip per user); their ids and tokens.
pub async fn mint_many(
    db: &PgPool,
    keys: &KeySet,
    role: Role,
    n: usize,
) -> (Vec<UserId>, Vec<String>) {
    let ids: Vec<UserId> = (0..n).map(|_| UserId::new()).collect();
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, role)
         SELECT id, id::text || '@example.test', 'Minted', 'not-a-hash', $2
         FROM unnest($1::uuid[]) AS id",
    )
    .bind(&ids)
    .bind(role.as_str())
    .execute(db)
    .await
    .expect("minted users");
    let tokens = ids
        .iter()
        .map(|&id| access_token(&keys.access, id, role))
        .collect();
    (ids, tokens)
}

/// An access token of `user` as `role`, for [`ACCESS_TTL`] (`keys`: a `KeySet`'s `access`).
pub fn access_token(keys: &TokenKeys, user: UserId, role: Role) -> String {
    keys.sign(AccessClaims { sub: user, role }, ACCESS_TTL)
        .expect("an access token")
}

/// A fan's access token.
pub fn fan_token(keys: &TokenKeys, user: UserId) -> String {
    access_token(keys, user, Role::Fan)
}

/// The admission token the waiting room signs when it lets `fan` in to `event`, for
/// [`ADMISSION_TTL`] (a fresh `jti` each time: one token buys one order). `keys`: a `KeySet`'s
/// `admission`, or another's for a forgery.
pub fn admission_token(keys: &TokenKeys, fan: UserId, event: EventId) -> String {
    keys.sign(
        AdmissionClaims {
            sub: fan,
            evt: event,
            jti: uuid::Uuid::new_v4(),
        },
        ADMISSION_TTL,
    )
    .expect("an admission token")
}
