//! TLS: lifetimes, the imported CA, client identities.

use std::path::Path;

use super::super::raw::*;
use super::super::*;
use super::{is_simple_name, Collector};

pub(super) fn check_tls(c: &mut Collector, base_dir: &Path, t: RawTls) -> Tls {
    let given_clients = t.clients.is_some();
    let tls = Tls {
        key_algorithm: t.key_algorithm.unwrap_or(KeyAlgorithm::EcdsaP256),
        ca_validity_days: t.ca_validity_days.unwrap_or(3650),
        validity_days: t.validity_days.unwrap_or(825),
        renew_before_days: t.renew_before_days.unwrap_or(30),
        ca: t.ca.unwrap_or(CaMode::Shared),
        import_ca: t.import_ca.and_then(|i| {
            Some(ImportCa {
                cert: base_dir.join(i.cert?),
                key: base_dir.join(i.key?),
            })
        }),
        clients: t
            .clients
            .unwrap_or_else(|| vec!["admin".into(), "prometheus".into()]),
    };
    for (days, field) in [
        (tls.validity_days, "tls.validity_days"),
        (tls.ca_validity_days, "tls.ca_validity_days"),
    ] {
        if days == 0 {
            c.error(
                Rule::ZeroValidity,
                field,
                "a certificate valid for 0 days is expired when it is made".into(),
                "set validity_days (default 825) and ca_validity_days (default 3650) above 0",
            );
        }
    }
    if tls.validity_days > 0 && tls.renew_before_days >= tls.validity_days {
        c.error(
            Rule::RenewNotBelowValidity,
            "tls.renew_before_days",
            format!(
                "renew_before_days ({}) is not below validity_days ({}): every render would reissue every certificate",
                tls.renew_before_days, tls.validity_days
            ),
            "make renew_before_days smaller than validity_days (default 30 of 825)",
        );
    }
    if tls.import_ca.is_none()
        && tls.ca_validity_days > 0
        && tls.ca_validity_days < tls.validity_days
    {
        c.error(
            Rule::CaShorterThanLeaves,
            "tls.ca_validity_days",
            format!(
                "the CA would be valid for {} days but the certificates it signs for {}: they would outlive it \
                 and fail verification once it expires",
                tls.ca_validity_days, tls.validity_days
            ),
            "make ca_validity_days at least validity_days (defaults 3650 and 825)",
        );
    }
    if let Some(imp) = &tls.import_ca {
        check_import_ca(c, &tls, imp);
    }
    for (i, name) in tls.clients.iter().enumerate() {
        if !is_simple_name(name) {
            c.error(
                Rule::BadClientName,
                &format!("tls.clients[{i}]"),
                format!("client identity {name:?} is not a simple name"),
                "use letters, digits, '-' and '_' (it becomes the CN and a file name)",
            );
        }
        if tls.clients[..i].contains(name) {
            c.error(
                Rule::DuplicateClient,
                &format!("tls.clients[{i}]"),
                format!("client identity {name:?} is listed twice"),
                "remove the duplicate",
            );
        }
    }
    if given_clients && !tls.clients.iter().any(|n| n == "admin") {
        c.error(
            Rule::NoAdminClient,
            "tls.clients",
            "no `admin` identity: provision apply, status and backup talk to the cluster with the admin \
             client certificate"
                .into(),
            "add admin to tls.clients (e.g. `clients: [admin, prometheus]`)",
        );
    }
    tls
}

fn check_import_ca(c: &mut Collector, tls: &Tls, imp: &ImportCa) {
    if tls.ca == CaMode::Separate {
        c.error(
            Rule::ImportCaWithSeparate,
            "tls.import_ca",
            "import_ca gives one CA, but `ca: separate` asks for two".into(),
            "use `ca: shared` with import_ca",
        );
    }
    let info = match std::fs::read_to_string(&imp.cert) {
        Err(e) => {
            c.error(
                Rule::ImportCaUnreadable,
                "tls.import_ca.cert",
                format!("cannot read {}: {e}", imp.cert.display()),
                "paths are relative to the cluster file; point it at the CA certificate (PEM)",
            );
            None
        }
        Ok(pem) => match crate::x509::inspect_pem(&pem) {
            Err(e) => {
                c.error(
                    Rule::ImportCaNotPem,
                    "tls.import_ca.cert",
                    format!("{}: {e}", imp.cert.display()),
                    "give a PEM CA certificate (-----BEGIN CERTIFICATE-----)",
                );
                None
            }
            Ok(info) => Some(info),
        },
    };
    if let Some(info) = &info {
        let now = time::OffsetDateTime::now_utc();
        let renew = time::Duration::days(tls.renew_before_days.into());
        if info.not_after < now {
            c.error(
                Rule::ImportCaExpired,
                "tls.import_ca.cert",
                format!(
                    "imported CA {} expired on {}: every certificate it signs fails verification (\"certificate has expired or is not yet valid\")",
                    imp.cert.display(),
                    info.not_after.date()
                ),
                "renew the CA, or drop import_ca to let provision create one",
            );
        } else if info.not_after - renew <= now {
            c.error(
                Rule::ImportCaExpired,
                "tls.import_ca.cert",
                format!(
                    "imported CA {} expires on {}, within renew_before_days ({}): certificates signed now would be \
                     due for renewal at once",
                    imp.cert.display(),
                    info.not_after.date(),
                    tls.renew_before_days
                ),
                "renew the CA, or drop import_ca to let provision create one",
            );
        } else if info.not_before > now {
            c.error(
                Rule::ImportCaNotYetValid,
                "tls.import_ca.cert",
                format!(
                    "imported CA {} is not valid before {} (clock skew?)",
                    imp.cert.display(),
                    info.not_before.date()
                ),
                "check this machine's clock, or reissue the CA with a past start date",
            );
        }
        if !info.is_ca {
            c.error(
                Rule::ImportCaNotCa,
                "tls.import_ca.cert",
                format!(
                    "{} is not a CA certificate (no basicConstraints CA:TRUE)",
                    imp.cert.display()
                ),
                "point import_ca.cert at the CA, not at a leaf certificate",
            );
        }
    }
    let key = match std::fs::read_to_string(&imp.key) {
        Ok(k) => k,
        Err(e) => {
            c.error(
                Rule::ImportCaUnreadable,
                "tls.import_ca.key",
                format!("cannot read {}: {e}", imp.key.display()),
                "paths are relative to the cluster file; point it at the CA private key (PEM)",
            );
            return;
        }
    };
    let Some(info) = info else { return };
    match crate::x509::key_matches(&info, &key) {
        Ok(true) => {}
        Ok(false) => c.error(
            Rule::ImportCaKeyMismatch,
            "tls.import_ca.key",
            format!(
                "{} is not the private key of {}: every certificate signed with it would fail verification \
                 (\"certificate signature failure\")",
                imp.key.display(),
                imp.cert.display()
            ),
            "point import_ca.key at the key the CA certificate was made with",
        ),
        Err(e) => c.error(
            Rule::ImportCaNotPem,
            "tls.import_ca.key",
            format!("{}: {e}", imp.key.display()),
            "give the CA's private key in PEM (PKCS#8, -----BEGIN PRIVATE KEY-----)",
        ),
    }
}
