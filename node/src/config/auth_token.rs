//! `--auth-token`, read as etcd 3.4/3.5 reads it (`auth/store.go` decomposeOpts, `auth/options.go`):
//! `simple`, or `jwt,` followed by comma-separated `name=value` options `sign-method` (required),
//! `pub-key` and `priv-key` (PEM files), `ttl` (a Go duration, default 5m). A duplicated or
//! value-less option is refused; an unknown one is only warned about, as etcd does.
//!
//! Only the text is checked here; the key files are read when the member starts (`api::jwt`).

use std::path::PathBuf;
use std::time::Duration;

use super::retention::{parse_flag_duration, FlagDuration};
use super::ConfigError;

/// etcd's `DefaultTTL` for JWTs.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(5 * 60);

/// How auth tokens are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthToken {
    /// Random tokens registered on every member through Raft (etcd's default).
    Simple,
    /// Signed JSON Web Tokens any member holding the key can check.
    Jwt(JwtSpec),
}

/// The options of `--auth-token jwt,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSpec {
    pub sign_method: SignMethod,
    pub pub_key: Option<PathBuf>,
    pub priv_key: Option<PathBuf>,
    pub ttl: Duration,
    /// Options etcd does not know (logged at start, as etcd warns about them).
    pub unknown: Vec<String>,
}

/// The JWT signature algorithms (etcd's `jwt.GetSigningMethod` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMethod {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    HS256,
    HS384,
    HS512,
}

impl SignMethod {
    const ALL: [SignMethod; 12] = [
        SignMethod::RS256,
        SignMethod::RS384,
        SignMethod::RS512,
        SignMethod::PS256,
        SignMethod::PS384,
        SignMethod::PS512,
        SignMethod::ES256,
        SignMethod::ES384,
        SignMethod::ES512,
        SignMethod::HS256,
        SignMethod::HS384,
        SignMethod::HS512,
    ];

    /// The JWT `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            SignMethod::RS256 => "RS256",
            SignMethod::RS384 => "RS384",
            SignMethod::RS512 => "RS512",
            SignMethod::PS256 => "PS256",
            SignMethod::PS384 => "PS384",
            SignMethod::PS512 => "PS512",
            SignMethod::ES256 => "ES256",
            SignMethod::ES384 => "ES384",
            SignMethod::ES512 => "ES512",
            SignMethod::HS256 => "HS256",
            SignMethod::HS384 => "HS384",
            SignMethod::HS512 => "HS512",
        }
    }

    fn from_name(name: &str) -> Option<SignMethod> {
        SignMethod::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl AuthToken {
    /// Parse the flag's text.
    pub fn parse(text: &str) -> Result<AuthToken, ConfigError> {
        let mut parts = text.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut opts: Vec<(&str, &str)> = Vec::new();
        for part in parts {
            let pair: Vec<&str> = part.split('=').collect();
            let [name, value] = pair[..] else {
                return Err(bad(format!("option {part:?} is not name=value")));
            };
            if opts.iter().any(|(n, _)| *n == name) {
                return Err(bad(format!("option {name} is given twice")));
            }
            opts.push((name, value));
        }
        match kind {
            "simple" => Ok(AuthToken::Simple),
            "jwt" => JwtSpec::from_options(&opts).map(AuthToken::Jwt),
            other => Err(ConfigError(format!(
                "--auth-token: unknown token type {other:?} (simple or jwt,...)"
            ))),
        }
    }
}

impl JwtSpec {
    fn from_options(opts: &[(&str, &str)]) -> Result<JwtSpec, ConfigError> {
        let get = |name: &str| {
            opts.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .filter(|v| !v.is_empty())
        };
        let method = get("sign-method").unwrap_or_default();
        let sign_method = SignMethod::from_name(method).ok_or_else(|| {
            let names: Vec<&str> = SignMethod::ALL.iter().map(|m| m.name()).collect();
            bad(format!(
                "invalid sign-method {method:?}: one of {}",
                names.join(", ")
            ))
        })?;
        let ttl = match get("ttl") {
            None => DEFAULT_JWT_TTL,
            Some(t) => match parse_flag_duration(t).map_err(|e| bad(format!("ttl: {e}")))? {
                FlagDuration::Positive(d) => d,
                // etcd would sign tokens that expire as they are made.
                FlagDuration::ZeroOrNegative => {
                    return Err(bad(format!("ttl {t:?} must be positive")))
                }
            },
        };
        let spec = JwtSpec {
            sign_method,
            pub_key: get("pub-key").map(PathBuf::from),
            priv_key: get("priv-key").map(PathBuf::from),
            ttl,
            unknown: opts
                .iter()
                .map(|(n, _)| n.to_string())
                .filter(|n| !["sign-method", "pub-key", "priv-key", "ttl"].contains(&n.as_str()))
                .collect(),
        };
        let hmac = matches!(
            sign_method,
            SignMethod::HS256 | SignMethod::HS384 | SignMethod::HS512
        );
        // etcd's ErrMissingKey: HMAC needs its secret in priv-key, the others at least one key.
        if spec.priv_key.is_none() && (hmac || spec.pub_key.is_none()) {
            return Err(bad(format!(
                "sign-method {} needs {}",
                sign_method.name(),
                if hmac {
                    "priv-key=FILE (the shared secret)"
                } else {
                    "priv-key=FILE or pub-key=FILE"
                }
            )));
        }
        Ok(spec)
    }
}

fn bad(why: String) -> ConfigError {
    ConfigError(format!("--auth-token jwt: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_options_are_read_as_etcd_reads_them() {
        let t = AuthToken::parse("jwt,pub-key=/k.pub,priv-key=/k,sign-method=RS256,ttl=10m")
            .expect("valid");
        let AuthToken::Jwt(spec) = t else {
            panic!("not jwt: {t:?}")
        };
        assert_eq!(spec.sign_method, SignMethod::RS256);
        assert_eq!(spec.pub_key, Some(PathBuf::from("/k.pub")));
        assert_eq!(spec.ttl, Duration::from_secs(600));
        let verify_only = AuthToken::parse("jwt,pub-key=/k.pub,sign-method=ES256,extra=1");
        let Ok(AuthToken::Jwt(spec)) = verify_only else {
            panic!("{verify_only:?}")
        };
        assert_eq!(spec.ttl, DEFAULT_JWT_TTL);
        assert_eq!(spec.priv_key, None);
        assert_eq!(spec.unknown, ["extra"]);
        assert_eq!(AuthToken::parse("simple"), Ok(AuthToken::Simple));
    }

    #[test]
    fn bad_jwt_options_are_refused_with_the_reason() {
        let why = |t: &str| AuthToken::parse(t).expect_err(t).0;
        assert!(why("jwt,priv-key=/k").contains("invalid sign-method \"\""));
        assert!(why("jwt,sign-method=RS1,priv-key=/k").contains("RS256, RS384"));
        assert!(why("jwt,sign-method=RS256").contains("priv-key=FILE or pub-key=FILE"));
        assert!(why("jwt,sign-method=HS256,pub-key=/k").contains("shared secret"));
        assert!(why("jwt,sign-method=RS256,priv-key=/k,priv-key=/j").contains("twice"));
        assert!(why("jwt,sign-method=RS256,priv-key").contains("not name=value"));
        assert!(why("jwt,sign-method=RS256,priv-key=/k,ttl=5").contains("ttl"));
        assert!(why("jwt,sign-method=RS256,priv-key=/k,ttl=0s").contains("positive"));
        assert!(why("macaroon").contains("unknown token type"));
    }
}
