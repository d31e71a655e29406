//! JWT auth tokens (`--auth-token jwt,...`), as etcd's `auth/jwt.go` makes them: claims `username`,
//! `revision` (the auth revision at login) and `exp`, signed with the member's private key. Any member
//! with the key checks a token without asking the others; a member given only `pub-key` checks tokens
//! but refuses to issue them.
//!
//! Signing and checking are the `jsonwebtoken` crate's (the most used Rust JWT library, kept up by its
//! authors; version 9 runs on `ring`, which rustls already builds here). Keys are read here: PKCS#1 or
//! PKCS#8 RSA, PKCS#8 or SEC1 ("EC PRIVATE KEY", what `openssl ecparam -genkey` writes) EC keys, as
//! etcd's jwt-go reads them; the checking half is derived from the private key with ring.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{self as sig, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};

use crate::config::{JwtSpec, SignMethod};

/// Why the JWT keys cannot be used; the member refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("--auth-token jwt: reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("--auth-token jwt: {path} is not a {what} PEM key usable with {alg}")]
    BadKey {
        path: String,
        what: &'static str,
        alg: &'static str,
    },
    #[error("--auth-token jwt: pub-key and priv-key do not match")]
    KeyMismatch,
    #[error("--auth-token jwt: sign-method ES512 is not supported by cairn (its JWT library, jsonwebtoken on ring, has no P-521); use ES256 or ES384")]
    Es512,
    #[error("--auth-token jwt: neither pub-key nor priv-key is given")]
    NoKey,
    /// etcd's `ErrVerifyOnly`, answered to Authenticate on a member with only `pub-key`.
    #[error("auth: token signing attempted with verify-only key")]
    VerifyOnly,
    #[error("signing a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// The claims of a token this member issues (etcd writes the revision as an integer).
#[derive(Debug, Serialize)]
struct Claims {
    username: String,
    revision: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

/// The claims of a token presented: etcd reads the revision as any JSON number (a float64).
#[derive(Debug, Deserialize)]
struct Presented {
    username: String,
    revision: f64,
}

/// A user and the auth revision its token was issued at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub user: String,
    pub revision: u64,
}

/// The member's JWT signer and checker.
pub struct Jwt {
    alg: Algorithm,
    /// None with only `pub-key`: this member checks tokens but does not issue them.
    signing: Option<EncodingKey>,
    checking: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("alg", &self.alg)
            .field("signs", &self.signing.is_some())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Jwt {
    /// Read the keys named by the flag.
    pub fn load(spec: &JwtSpec) -> Result<Jwt, JwtError> {
        let alg = algorithm(spec.sign_method)?;
        let read = |p: &Option<std::path::PathBuf>| match p {
            None => Ok(None),
            Some(p) => std::fs::read(p)
                .map(|pem| Some((p.display().to_string(), pem)))
                .map_err(|source| JwtError::Read {
                    path: p.display().to_string(),
                    source,
                }),
        };
        let private = read(&spec.priv_key)?;
        let public = read(&spec.pub_key)?;
        Jwt::from_pems(alg, private, public, spec.ttl)
    }

    /// The signer and checker of (file name, PEM) keys.
    fn from_pems(
        alg: Algorithm,
        private: Option<(String, Vec<u8>)>,
        public: Option<(String, Vec<u8>)>,
        ttl: Duration,
    ) -> Result<Jwt, JwtError> {
        let bad = |path: String, what| JwtError::BadKey {
            path,
            what,
            alg: alg_name(alg),
        };
        let (signing, derived) = match private {
            Some((path, pem)) => {
                let (e, d) = private_key(alg, &pem).ok_or_else(|| bad(path, "private"))?;
                (Some(e), Some(d))
            }
            None => (None, None),
        };
        let given = match public {
            Some((path, pem)) => Some(public_key(alg, &pem).ok_or_else(|| bad(path, "public"))?),
            None => None,
        };
        let mut validation = Validation::new(alg);
        // jwt-go checks `exp` when present, with no leeway, and requires no claim.
        validation.leeway = 0;
        validation.required_spec_claims.clear();
        let jwt = |checking| Jwt {
            alg,
            signing: signing.clone(),
            checking,
            validation: validation.clone(),
            ttl,
        };
        match (derived, given) {
            (Some(derived), Some(given)) => {
                // etcd's ErrKeyMismatch: what one key signs, the other must accept.
                let with_given = jwt(given);
                let probe = with_given.sign("probe", 0)?;
                if with_given.check(&probe).is_none() {
                    return Err(JwtError::KeyMismatch);
                }
                Ok(jwt(derived))
            }
            (Some(k), None) | (None, Some(k)) => Ok(jwt(k)),
            (None, None) => Err(JwtError::NoKey),
        }
    }

    /// Whether this member can issue tokens (it has the private key).
    pub fn signs(&self) -> bool {
        self.signing.is_some()
    }

    /// A token for `user` at auth revision `revision`, valid for the TTL (refused on a verify-only
    /// member).
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, JwtError> {
        let Some(key) = &self.signing else {
            return Err(JwtError::VerifyOnly);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp: Some((now + self.ttl).as_secs()),
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, key).map_err(JwtError::Sign)
    }

    #[cfg(test)]
    fn sign_claims(&self, claims: &Claims) -> String {
        let key = self.signing.as_ref().expect("a signing key");
        jsonwebtoken::encode(&Header::new(self.alg), claims, key).expect("sign")
    }

    /// The auth revision `token` claims, read without checking its signature (the request's own
    /// check does that): enough to tell that this member has not applied the auth changes the
    /// token was issued after. None when it is not a JWT with a revision.
    pub fn claimed_revision(token: &str) -> Option<u64> {
        let mut v = Validation::default();
        v.insecure_disable_signature_validation();
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let t =
            jsonwebtoken::decode::<Presented>(token, &DecodingKey::from_secret(&[]), &v).ok()?;
        (t.claims.revision >= 0.0).then_some(t.claims.revision as u64)
    }

    /// The user and auth revision of a token this member's key signed, or None if it is garbled,
    /// signed otherwise, expired or lacks a claim (etcd: "invalid auth token").
    pub fn check(&self, token: &str) -> Option<TokenInfo> {
        match jsonwebtoken::decode::<Presented>(token, &self.checking, &self.validation) {
            Ok(t) if t.claims.revision >= 0.0 => Some(TokenInfo {
                user: t.claims.username,
                revision: t.claims.revision as u64,
            }),
            Ok(_) => None,
            Err(e) => {
                // Never the token itself: it is a credential.
                tracing::warn!(error = %e, "invalid JWT auth token");
                None
            }
        }
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

fn algorithm(m: SignMethod) -> Result<Algorithm, JwtError> {
    Ok(match m {
        SignMethod::RS256 => Algorithm::RS256,
        SignMethod::RS384 => Algorithm::RS384,
        SignMethod::RS512 => Algorithm::RS512,
        SignMethod::PS256 => Algorithm::PS256,
        SignMethod::PS384 => Algorithm::PS384,
        SignMethod::PS512 => Algorithm::PS512,
        SignMethod::ES256 => Algorithm::ES256,
        SignMethod::ES384 => Algorithm::ES384,
        SignMethod::ES512 => return Err(JwtError::Es512),
        SignMethod::HS256 => Algorithm::HS256,
        SignMethod::HS384 => Algorithm::HS384,
        SignMethod::HS512 => Algorithm::HS512,
    })
}

/// The signing key and its checking half from a private key file (for HMAC: the secret's bytes).
fn private_key(alg: Algorithm, pem: &[u8]) -> Option<(EncodingKey, DecodingKey)> {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Some((EncodingKey::from_secret(pem), DecodingKey::from_secret(pem)))
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let (ring_alg, curve) = if alg == Algorithm::ES256 {
                (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, P256_OID)
            } else {
                (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, P384_OID)
            };
            let pkcs8 = match PrivateKeyDer::from_pem_slice(pem).ok()? {
                PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
                PrivateKeyDer::Sec1(k) => sec1_to_pkcs8(k.secret_sec1_der(), curve),
                _ => return None,
            };
            let rng = ring::rand::SystemRandom::new();
            let pair = sig::EcdsaKeyPair::from_pkcs8(ring_alg, &pkcs8, &rng).ok()?;
            Some((
                EncodingKey::from_ec_der(&pkcs8),
                DecodingKey::from_ec_der(pair.public_key().as_ref()),
            ))
        }
        Algorithm::EdDSA => None,
        // RSA, PKCS#1 or PKCS#8.
        _ => {
            let pair = match PrivateKeyDer::from_pem_slice(pem).ok()? {
                PrivateKeyDer::Pkcs1(k) => sig::RsaKeyPair::from_der(k.secret_pkcs1_der()).ok()?,
                PrivateKeyDer::Pkcs8(k) => {
                    sig::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).ok()?
                }
                _ => return None,
            };
            Some((
                EncodingKey::from_rsa_pem(pem).ok()?,
                DecodingKey::from_rsa_der(pair.public_key().as_ref()),
            ))
        }
    }
}

/// The checking key from a public key file (SubjectPublicKeyInfo "PUBLIC KEY", or PKCS#1 RSA).
fn public_key(alg: Algorithm, pem: &[u8]) -> Option<DecodingKey> {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem).ok(),
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem).ok(),
        // HMAC has one shared secret (priv-key); jwt-go ignores pub-key for it.
        _ => None,
    }
}

/// DER of the named-curve OIDs (RFC 5480): prime256v1 and secp384r1.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// DER of id-ecPublicKey (1.2.840.10045.2.1).
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// Wrap a SEC1 `ECPrivateKey` in PKCS#8 (RFC 5208 PrivateKeyInfo: version 0, the algorithm
/// id-ecPublicKey with the curve, the SEC1 bytes as an octet string), the form ring reads.
fn sec1_to_pkcs8(sec1: &[u8], curve: &[u8]) -> Vec<u8> {
    let mut alg_id = EC_PUBLIC_KEY_OID.to_vec();
    alg_id.extend_from_slice(curve);
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend(der(0x30, &alg_id));
    body.extend(der(0x04, sec1));
    der(0x30, &body)
}

/// One DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test-only keys made with `openssl ecparam -name prime256v1 -genkey -noout` (SEC1, as etcd's
    // docs make them) and `openssl ec -pubout`.
    const EC_PRIVATE: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIDEovw7uLxuT7UxMPFSUMIUlnU4d5aHL41IfO8TFQENzoAoGCCqGSM49
AwEHoUQDQgAE8ZnAj1hdfJDjrK7CZxxrivcXdMJxN7YHPvJYeld0E28mqj/J9/IF
0wkToPwqHJUVmJ2QuM4mShzC5KEXA9K1PA==
-----END EC PRIVATE KEY-----
";
    const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8ZnAj1hdfJDjrK7CZxxrivcXdMJx
N7YHPvJYeld0E28mqj/J9/IF0wkToPwqHJUVmJ2QuM4mShzC5KEXA9K1PA==
-----END PUBLIC KEY-----
";
    const OTHER_EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEu7ICP+XqZW1+3Hv0kGGQnbUO8EJ1
ePOpdvZSm0yW3wTegt91hlqsUBq74FmpdP8c2kiwXiSKvuwNsKF1NKUiBQ==
-----END PUBLIC KEY-----
";

    fn key(pem: &str) -> Option<(String, Vec<u8>)> {
        Some(("test.pem".into(), pem.as_bytes().to_vec()))
    }

    fn es256(private: Option<&str>, public: Option<&str>) -> Result<Jwt, JwtError> {
        let ttl = Duration::from_secs(60);
        Jwt::from_pems(
            Algorithm::ES256,
            private.and_then(key),
            public.and_then(key),
            ttl,
        )
    }

    #[test]
    fn a_token_signed_by_one_member_is_checked_by_a_member_with_the_public_key_only() {
        let signer = es256(Some(EC_PRIVATE), Some(EC_PUBLIC)).expect("SEC1 key and its public key");
        let checker = es256(None, Some(EC_PUBLIC)).expect("public key only");
        assert!(signer.signs() && !checker.signs());
        let token = signer.sign("alice", 7).expect("sign");
        let want = Some(TokenInfo {
            user: "alice".into(),
            revision: 7,
        });
        assert_eq!(checker.check(&token), want);
        assert_eq!(signer.check(&token), want);
        assert!(matches!(
            checker.sign("alice", 7),
            Err(JwtError::VerifyOnly)
        ));
        // Garbled, re-signed by another key, expired or without a claim: all invalid.
        let mut garbled = token.clone();
        garbled.insert(token.len() / 2, 'x');
        assert_eq!(checker.check(&garbled), None);
        assert_eq!(checker.check("not.a.jwt"), None);
        let other = es256(None, Some(OTHER_EC_PUBLIC)).expect("other key");
        assert_eq!(other.check(&token), None);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let expired = signer.sign_claims(&Claims {
            username: "alice".into(),
            revision: 7,
            exp: Some(now - 1),
        });
        assert_eq!(checker.check(&expired), None);
        let no_exp = signer.sign_claims(&Claims {
            username: "alice".into(),
            revision: 7,
            exp: None,
        });
        assert_eq!(checker.check(&no_exp), want, "jwt-go requires no exp");
        // The claimed revision is read whoever signed, expired or not; garbage claims none.
        assert_eq!(Jwt::claimed_revision(&token), Some(7));
        assert_eq!(Jwt::claimed_revision(&expired), Some(7));
        assert_eq!(Jwt::claimed_revision("not.a.jwt"), None);
        assert_eq!(Jwt::claimed_revision("Kq3fRB.17"), None, "a simple token");
    }

    #[test]
    fn mismatched_or_unusable_keys_are_refused() {
        assert!(matches!(
            es256(Some(EC_PRIVATE), Some(OTHER_EC_PUBLIC)),
            Err(JwtError::KeyMismatch)
        ));
        assert!(matches!(
            es256(Some(EC_PUBLIC), None),
            Err(JwtError::BadKey {
                what: "private",
                ..
            })
        ));
        let rsa_with_ec = Jwt::from_pems(Algorithm::RS256, key(EC_PRIVATE), None, Duration::ZERO);
        assert!(matches!(rsa_with_ec, Err(JwtError::BadKey { .. })));
        assert!(matches!(es256(None, None), Err(JwtError::NoKey)));
        assert!(matches!(algorithm(SignMethod::ES512), Err(JwtError::Es512)));
    }

    #[test]
    fn der_lengths_use_the_long_form_from_128_bytes() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der(0x04, &[0; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = der(0x04, &[0; 300]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
