//! Passwords: the policy, and argon2id hashing on the blocking pool (a hash costs tens of
//! milliseconds of CPU, which must never stall the async workers).

use std::sync::OnceLock;

use anyhow::Context;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use shared::config::Secret;

use super::AccountError;

/// Long enough to resist guessing, short enough that hashing cannot be used to burn CPU.
const MIN_CHARS: usize = 8;
const MAX_CHARS: usize = 128;

/// A password that meets the policy. Never printed.
#[derive(Debug, Clone)]
pub struct Password(Secret<String>);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(AccountError::WeakPassword(format!(
                "A password needs at least {MIN_CHARS} characters."
            )));
        }
        if chars > MAX_CHARS {
            return Err(AccountError::WeakPassword(format!(
                "A password has at most {MAX_CHARS} characters."
            )));
        }
        Ok(Self(Secret::new(raw.to_string())))
    }
}

/// An argon2id PHC string with a fresh random salt.
pub async fn hash(password: &Password) -> anyhow::Result<String> {
    let password = password.0.expose().clone();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| anyhow::anyhow!("hashing a password: {err}"))
    })
    .await
    .context("the hashing task panicked")?
}

/// Checks `candidate` against `stored`. When there is no stored hash (unknown email) it still
/// spends the same work on a dummy hash, so response time does not tell which emails exist.
pub async fn verify(candidate: &str, stored: Option<String>) -> anyhow::Result<bool> {
    let candidate = candidate.to_string();
    tokio::task::spawn_blocking(move || {
        let (hash, known) = match stored {
            Some(hash) => (hash, true),
            None => (dummy_hash().to_string(), false),
        };
        let matches = Argon2::default()
            .verify_password(candidate.as_bytes(), hash.as_str())
            .is_ok();
        matches && known
    })
    .await
    .context("the verifying task panicked")
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(shared::tokens::random_token().as_bytes())
            .map(|hash| hash.to_string())
            .expect("hashing a random token with default parameters works")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_counts_characters_not_bytes() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("ééééééé").is_err());
        assert!(Password::parse("éééééééé").is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let password = Password::parse("correct horse").expect("valid");
        let stored = hash(&password).await.expect("hashes");
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            verify("correct horse", Some(stored.clone()))
                .await
                .expect("runs")
        );
        assert!(!verify("wrong horse!", Some(stored)).await.expect("runs"));
        assert!(!verify("correct horse", None).await.expect("runs"));
    }
}
