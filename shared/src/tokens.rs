//! Signed tokens: access (accounts), queue and admission (waiting room), ticket (QR codes).
//!
//! All but the queue token (below) are JWTs signed with Ed25519 (EdDSA). Verification needs only
//! the public key, so every service checks tokens locally with no network hop, and only the
//! issuer of a kind holds its private key: the ticketing API signs access and ticket tokens, the
//! waiting room signs admission tokens, the registration worker signs ticket tokens.
//!
//! Each kind has its own audience (`aud`), so a token of one kind is never accepted as another,
//! even where two kinds share a key. Algorithms are pinned per call: `alg: none` and HS256
//! confusion are refused by construction.
//!
//! One kind never leaves its issuer: the queue token, which the waiting room hands a fan at join
//! and reads back on every poll. It is *sealed* ([`TokenKeys::seal`]/[`TokenKeys::open`]):
//! HS256 under a key derived (HKDF-SHA256) from the purpose's private key, so every waiting-room
//! instance derives the same key, nobody holding only the public key can, and a poll costs an
//! HMAC (about a microsecond) instead of an Ed25519 verification (tens of microseconds, a quarter
//! of the waiting room's CPU in a 100,000-fan sale).

use std::{path::Path, time::Duration};

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    domain::Role,
    ids::{EventId, TicketId, UserId},
};

/// A kind of token: its claims and its audience.
pub trait Claims: Serialize + DeserializeOwned {
    /// The `aud` claim of this kind.
    const AUDIENCE: &'static str;
}

/// Proves who is calling. Signed by the ticketing API at login and refresh; short-lived
/// (at most 15 minutes) so that a ban takes effect within one lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: UserId,
    pub role: Role,
}

impl Claims for AccessClaims {
    const AUDIENCE: &'static str = "access";
}

/// Names a fan's place in one event's waiting room. Sealed by the waiting room, which alone
/// reads it: the place it carries lets any instance answer a status read from memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueClaims {
    pub sub: UserId,
    pub evt: EventId,
    /// Where the join put the fan; absent in tokens of joins answered `admitted` at once (and
    /// in tokens from before places were sealed), which the waiting room looks up instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<QueuePlace>,
}

/// A fan's place in line, as their join found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueuePlace {
    /// Their number: the line is served in the order of numbers.
    Number(u64),
    /// Their arrival in the pre-queue (1, 2, 3, ...): the shuffle at opening turns it into a
    /// number, which every instance derives from the recorded seed.
    PreQueue(u64),
}

impl Claims for QueueClaims {
    const AUDIENCE: &'static str = "queue";
}

/// Lets one fan shop one high-demand event for a short while. Signed by the waiting room,
/// checked by the ticketing API on holds and registrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionClaims {
    pub sub: UserId,
    pub evt: EventId,
    /// Unique per admission, so one can be traced (and, if need be, revoked).
    pub jti: Uuid,
}

impl Claims for AdmissionClaims {
    const AUDIENCE: &'static str = "admission";
}

/// The code in a ticket's QR: verifiable offline at the door with the public ticket key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    pub tid: TicketId,
    pub evt: EventId,
}

impl Claims for TicketClaims {
    const AUDIENCE: &'static str = "ticket";
}

/// What travels in the JWT: the kind's claims plus the registered ones.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<C> {
    #[serde(flatten)]
    claims: C,
    aud: String,
    iat: i64,
    exp: i64,
}

/// A token that passed verification.
#[derive(Debug, Clone)]
pub struct Verified<C> {
    pub claims: C,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
    #[error("this service holds no private key for {0} tokens")]
    CannotSign(&'static str),
}

/// The key files of one purpose in `KEYS_DIR`: `<name>.key` (PKCS#8 PEM) and `<name>.pub` (SPKI PEM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Access tokens.
    Access,
    /// Queue and admission tokens.
    Admission,
    /// Ticket codes.
    Ticket,
}

impl KeyPurpose {
    pub fn file_stem(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Admission => "admission",
            Self::Ticket => "ticket",
        }
    }
}

/// Clock skew tolerated between the services that sign and verify.
const LEEWAY_SECS: u64 = 5;

/// One purpose's keys: always the public key, the private key only where this service signs
/// (and with it the sealing key).
#[derive(Clone)]
pub struct TokenKeys {
    purpose: KeyPurpose,
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    sealing: Option<SealingKey>,
}

/// The HS256 key of tokens a service issues and alone reads back, derived from the purpose's
/// private key.
#[derive(Clone)]
struct SealingKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SealingKey {
    fn derive(private_key: &[u8], purpose: KeyPurpose) -> Self {
        use aws_lc_rs::hkdf;
        let prk =
            hkdf::Salt::new(hkdf::HKDF_SHA256, b"ticketing sealed tokens v1").extract(private_key);
        let mut secret = [0u8; 32];
        prk.expand(&[purpose.file_stem().as_bytes()], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut secret))
            .expect("32 bytes is HKDF-SHA256's own output length");
        Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
        }
    }
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("purpose", &self.purpose)
            .field("can_sign", &self.signing.is_some())
            .finish()
    }
}

impl TokenKeys {
    /// Loads `<dir>/<purpose>.pub`, and `<dir>/<purpose>.key` when `with_private_key`.
    pub fn load(dir: &Path, purpose: KeyPurpose, with_private_key: bool) -> anyhow::Result<Self> {
        let stem = purpose.file_stem();
        let pub_path = dir.join(format!("{stem}.pub"));
        let public = std::fs::read(&pub_path)
            .with_context(|| format!("reading the public key {}", pub_path.display()))?;
        let verifying = DecodingKey::from_ed_pem(&public)
            .with_context(|| format!("{} is not an Ed25519 public key", pub_path.display()))?;
        let (signing, sealing) = if with_private_key {
            let key_path = dir.join(format!("{stem}.key"));
            let private = std::fs::read(&key_path)
                .with_context(|| format!("reading the private key {}", key_path.display()))?;
            let signing = EncodingKey::from_ed_pem(&private)
                .with_context(|| format!("{} is not an Ed25519 private key", key_path.display()))?;
            (Some(signing), Some(SealingKey::derive(&private, purpose)))
        } else {
            (None, None)
        };
        Ok(Self {
            purpose,
            signing,
            verifying,
            sealing,
        })
    }

    /// A fresh key pair held in memory (tests, tools).
    pub fn generate(purpose: KeyPurpose) -> Self {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .expect("the system RNG works");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key we just generated");
        Self {
            purpose,
            signing: Some(EncodingKey::from_ed_der(pkcs8.as_ref())),
            verifying: DecodingKey::from_ed_der(pair.public_key().as_ref()),
            sealing: Some(SealingKey::derive(pkcs8.as_ref(), purpose)),
        }
    }

    /// The same keys without the private half, as a verifying-only service holds them.
    pub fn verifying_only(&self) -> Self {
        Self {
            purpose: self.purpose,
            signing: None,
            verifying: self.verifying.clone(),
            sealing: None,
        }
    }

    /// Signs `claims`, valid for `ttl` from now.
    pub fn sign<C: Claims>(&self, claims: C, ttl: Duration) -> Result<String, TokenError> {
        self.sign_at(claims, OffsetDateTime::now_utc(), ttl)
    }

    /// Signs `claims` as if issued at `issued_at` (tests use it for expired tokens).
    pub fn sign_at<C: Claims>(
        &self,
        claims: C,
        issued_at: OffsetDateTime,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let key = self.signing.as_ref().ok_or(self.cannot_sign())?;
        encode(Algorithm::EdDSA, key, claims, issued_at, ttl)
    }

    /// Checks signature, algorithm, audience and expiry, and returns the claims.
    pub fn verify<C: Claims>(&self, token: &str) -> Result<Verified<C>, TokenError> {
        decode(Algorithm::EdDSA, &self.verifying, token)
    }

    /// Seals `claims` for this service alone to read back ([`Self::open`]), valid for `ttl`.
    pub fn seal<C: Claims>(&self, claims: C, ttl: Duration) -> Result<String, TokenError> {
        self.seal_at(claims, OffsetDateTime::now_utc(), ttl)
    }

    /// Seals `claims` as if issued at `issued_at` (tests use it for expired tokens).
    pub fn seal_at<C: Claims>(
        &self,
        claims: C,
        issued_at: OffsetDateTime,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let key = self.sealing.as_ref().ok_or(self.cannot_sign())?;
        encode(Algorithm::HS256, &key.encoding, claims, issued_at, ttl)
    }

    /// Checks a sealed token (HS256 only, audience, expiry) and returns the claims. Needs the
    /// private key, like sealing.
    pub fn open<C: Claims>(&self, token: &str) -> Result<Verified<C>, TokenError> {
        let key = self.sealing.as_ref().ok_or(self.cannot_sign())?;
        decode(Algorithm::HS256, &key.decoding, token)
    }

    fn cannot_sign(&self) -> TokenError {
        TokenError::CannotSign(self.purpose.file_stem())
    }
}

fn encode<C: Claims>(
    algorithm: Algorithm,
    key: &EncodingKey,
    claims: C,
    issued_at: OffsetDateTime,
    ttl: Duration,
) -> Result<String, TokenError> {
    let iat = issued_at.unix_timestamp();
    let envelope = Envelope {
        claims,
        aud: C::AUDIENCE.to_string(),
        iat,
        exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
    };
    jsonwebtoken::encode(&Header::new(algorithm), &envelope, key).map_err(|err| {
        tracing::error!(error = %err, "token signing failed");
        TokenError::Invalid
    })
}

/// Decodes with `algorithm` pinned: a token naming any other (or none) is refused.
fn decode<C: Claims>(
    algorithm: Algorithm,
    key: &DecodingKey,
    token: &str,
) -> Result<Verified<C>, TokenError> {
    let mut validation = Validation::new(algorithm);
    validation.set_audience(&[C::AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "aud", "iat"]);
    validation.leeway = LEEWAY_SECS;
    let data =
        jsonwebtoken::decode::<Envelope<C>>(token, key, &validation).map_err(|err| {
            match err.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            }
        })?;
    let envelope = data.claims;
    let at = |secs| OffsetDateTime::from_unix_timestamp(secs).map_err(|_| TokenError::Invalid);
    Ok(Verified {
        claims: envelope.claims,
        issued_at: at(envelope.iat)?,
        expires_at: at(envelope.exp)?,
    })
}

/// The key set of a deployment; each service keeps what it uses.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub access: TokenKeys,
    pub admission: TokenKeys,
    pub ticket: TokenKeys,
}

impl KeySet {
    /// Loads every public key, and the private keys of the purposes this service signs.
    pub fn load(dir: &Path, signs: &[KeyPurpose]) -> anyhow::Result<Self> {
        let load = |purpose| TokenKeys::load(dir, purpose, signs.contains(&purpose));
        Ok(Self {
            access: load(KeyPurpose::Access)?,
            admission: load(KeyPurpose::Admission)?,
            ticket: load(KeyPurpose::Ticket)?,
        })
    }

    /// Fresh in-memory keys for every purpose (tests).
    pub fn generate() -> Self {
        Self {
            access: TokenKeys::generate(KeyPurpose::Access),
            admission: TokenKeys::generate(KeyPurpose::Admission),
            ticket: TokenKeys::generate(KeyPurpose::Ticket),
        }
    }
}

/// A random opaque token (256 bits, base64url): refresh tokens, queue secrets.
pub fn random_token() -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of an opaque token: what is stored instead of the token itself.
pub fn token_digest(token: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};

    use super::*;

    fn access() -> AccessClaims {
        AccessClaims {
            sub: UserId::new(),
            role: Role::Fan,
        }
    }

    #[test]
    fn a_signed_token_verifies_with_the_public_key_alone() {
        let keys = TokenKeys::generate(KeyPurpose::Access);
        let claims = access();
        let token = keys
            .sign(claims.clone(), Duration::from_secs(60))
            .expect("signs");
        let verified = keys
            .verifying_only()
            .verify::<AccessClaims>(&token)
            .expect("verifies");
        assert_eq!(verified.claims, claims);
        assert!(verified.expires_at > verified.issued_at);
    }

    #[test]
    fn a_verifying_only_key_cannot_sign() {
        let keys = TokenKeys::generate(KeyPurpose::Access).verifying_only();
        assert_eq!(
            keys.sign(access(), Duration::from_secs(60)),
            Err(TokenError::CannotSign("access"))
        );
    }

    #[test]
    fn another_key_expiry_tampering_audience_and_alg_none_are_refused() {
        let keys = TokenKeys::generate(KeyPurpose::Access);
        let other = TokenKeys::generate(KeyPurpose::Access);
        let token = other
            .sign(access(), Duration::from_secs(60))
            .expect("signs");
        assert_eq!(
            keys.verify::<AccessClaims>(&token).err(),
            Some(TokenError::Invalid)
        );

        let old = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let expired = keys
            .sign_at(access(), old, Duration::from_secs(60))
            .expect("signs");
        assert_eq!(
            keys.verify::<AccessClaims>(&expired).err(),
            Some(TokenError::Expired)
        );

        // Swap the payload for one that claims admin: the signature no longer matches.
        let token = keys.sign(access(), Duration::from_secs(60)).expect("signs");
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = {
            let json = String::from_utf8(B64.decode(parts[1]).expect("base64url")).expect("utf8");
            B64.encode(json.replace("\"fan\"", "\"admin\""))
        };
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            keys.verify::<AccessClaims>(&tampered).err(),
            Some(TokenError::Invalid)
        );

        // alg: none, no signature.
        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(
            keys.verify::<AccessClaims>(&unsigned).err(),
            Some(TokenError::Invalid)
        );

        // A ticket token signed with the same key is still not an access token.
        let ticket = keys
            .sign(
                TicketClaims {
                    tid: TicketId::new(),
                    evt: EventId::new(),
                },
                Duration::from_secs(60),
            )
            .expect("signs");
        assert_eq!(
            keys.verify::<AccessClaims>(&ticket).err(),
            Some(TokenError::Invalid)
        );
    }

    fn queue() -> QueueClaims {
        QueueClaims {
            sub: UserId::new(),
            evt: EventId::new(),
            place: Some(QueuePlace::Number(42)),
        }
    }

    #[test]
    fn a_sealed_token_opens_only_with_the_private_key_it_was_derived_from() {
        let keys = TokenKeys::generate(KeyPurpose::Admission);
        let claims = queue();
        let token = keys
            .seal(claims.clone(), Duration::from_secs(60))
            .expect("seals");
        assert_eq!(
            keys.open::<QueueClaims>(&token).expect("opens").claims,
            claims
        );
        // Another key pair, or the public key alone, cannot open it.
        let other = TokenKeys::generate(KeyPurpose::Admission);
        assert_eq!(
            other.open::<QueueClaims>(&token).err(),
            Some(TokenError::Invalid)
        );
        assert_eq!(
            keys.verifying_only().open::<QueueClaims>(&token).err(),
            Some(TokenError::CannotSign("admission"))
        );
        // Sealed is not signed, and signed is not sealed: each call pins its algorithm.
        assert_eq!(
            keys.verify::<QueueClaims>(&token).err(),
            Some(TokenError::Invalid)
        );
        let signed = keys.sign(queue(), Duration::from_secs(60)).expect("signs");
        assert_eq!(
            keys.open::<QueueClaims>(&signed).err(),
            Some(TokenError::Invalid)
        );
        // Expired, and another kind sealed with the same key.
        let old = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let expired = keys
            .seal_at(queue(), old, Duration::from_secs(60))
            .expect("seals");
        assert_eq!(
            keys.open::<QueueClaims>(&expired).err(),
            Some(TokenError::Expired)
        );
        let admission = keys
            .seal(
                AdmissionClaims {
                    sub: UserId::new(),
                    evt: EventId::new(),
                    jti: Uuid::new_v4(),
                },
                Duration::from_secs(60),
            )
            .expect("seals");
        assert_eq!(
            keys.open::<QueueClaims>(&admission).err(),
            Some(TokenError::Invalid)
        );
    }

    #[test]
    fn instances_loading_the_same_key_files_seal_for_each_other() {
        let dir = std::env::temp_dir().join(format!("tokens-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pair = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .expect("rng");
        let public = {
            use aws_lc_rs::signature::KeyPair;
            aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pair.as_ref())
                .expect("pair")
                .public_key()
                .as_ref()
                .to_vec()
        };
        let pem = |label: &str, der: &[u8]| {
            use base64::engine::general_purpose::STANDARD;
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                STANDARD.encode(der)
            )
        };
        // SPKI of an Ed25519 key: the fixed 12-byte prefix, then the 32-byte key.
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(&public);
        std::fs::write(dir.join("admission.key"), pem("PRIVATE KEY", pair.as_ref())).expect("key");
        std::fs::write(dir.join("admission.pub"), pem("PUBLIC KEY", &spki)).expect("pub");
        let one = TokenKeys::load(&dir, KeyPurpose::Admission, true).expect("loads");
        let two = TokenKeys::load(&dir, KeyPurpose::Admission, true).expect("loads");
        let token = one.seal(queue(), Duration::from_secs(60)).expect("seals");
        assert!(two.open::<QueueClaims>(&token).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }
}
