//! Who is calling. The access token is checked locally (signature, audience, expiry) and
//! against the ban list; no database round trip on the hot path.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use shared::{domain::Role, ids::UserId, tokens::AccessClaims};

use crate::{AppState, error::ApiError};

/// The authenticated caller, from `Authorization: Bearer <access token>`.
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser {
    pub id: UserId,
    pub role: Role,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AccessClaims { sub, role } =
            shared::http::authenticate(&parts.headers, &state.keys.access, Some(&state.bans))?;
        Ok(Self { id: sub, role })
    }
}

/// The caller, who must be an admin.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub CurrentUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::forbidden("forbidden", "Only admins may do this."));
        }
        Ok(Self(user))
    }
}

/// The client's IP, for rate limits (see `shared::http::client_ip`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr)
            .ok_or_else(|| anyhow::anyhow!("the server runs without connect info"))?;
        Ok(Self(shared::http::client_ip(
            &parts.headers,
            peer,
            state.trust_forwarded_for,
        )))
    }
}
