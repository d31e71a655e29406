//! The one validation pass over all flags, with etcd's messages.

use super::{err, parse_initial_cluster, parse_url, Config, ConfigError, DEFAULT_BCRYPT_COST};

impl Config {
    /// Check every flag together; the first refusal is returned with etcd's wording.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return err("--name must not be empty");
        }
        if self.runtime_threads == Some(0) {
            return err(
                "--runtime-threads must be at least 1 (leave it out to share this host's CPUs among its members)",
            );
        }
        for (flag, urls) in [
            ("listen-client-urls", &self.listen_client_urls),
            ("listen-peer-urls", &self.listen_peer_urls),
        ] {
            if urls.is_empty() {
                return err(format!("--{flag} must list at least one URL"));
            }
            for u in urls {
                let p = parse_url(flag, u)?;
                // etcd binds to literal IPs only ("localhost" is allowed for convenience, as etcd does).
                if p.host != "localhost" && p.host.parse::<std::net::IpAddr>().is_err() {
                    return err(format!("expected IP in URL for binding ({u})"));
                }
            }
        }
        for u in self
            .advertise_client_urls
            .iter()
            .chain(&self.listen_metrics_urls)
        {
            parse_url("advertise-client-urls", u)?;
        }
        for u in &self.initial_advertise_peer_urls {
            parse_url("initial-advertise-peer-urls", u)?;
        }
        // etcd reads `--cors` as URLs with a port (or `*`), and refuses anything else.
        for u in self.cors.iter().map(|u| u.trim()) {
            if !u.is_empty() && u != "*" {
                parse_url("cors", u)?;
            }
        }
        if self.discovery.enabled() || !self.discovery.discovery_endpoints.is_empty() {
            let others = usize::from(self.initial_cluster.is_some())
                + usize::from(self.discovery_srv.is_some());
            self.discovery.validate(others)?;
        }
        match (&self.discovery_srv, &self.initial_cluster) {
            (Some(_), Some(_)) => {
                return err("--discovery-srv and --initial-cluster cannot both be set: \
                            bootstrap either from DNS SRV records or from a static member list")
            }
            // Checked once the discovery service answers (bootstrap::discovery).
            (None, None) if self.discovery.enabled() => {}
            (None, _) => self.validate_membership()?,
            // Checked once the SRV records are resolved (bootstrap::srv).
            (Some(_), None) => {}
        }
        if self.heartbeat_interval == 0 || self.election_timeout < 5 * self.heartbeat_interval {
            return err(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            ));
        }
        if self.max_request_bytes == 0 {
            return err("--max-request-bytes must be greater than 0");
        }
        // --bcrypt-cost is not refused: see `bcrypt_cost_in_use`.
        self.auth_token()?;
        self.auto_compaction()?;
        self.validate_tls()
    }

    /// The bcrypt cost passwords are hashed with, and etcd's warning when `--bcrypt-cost` is outside
    /// bcrypt's 4..=31 (Go's `bcrypt.MinCost`..=`MaxCost`): etcd 3.4.23 does not refuse to start
    /// then, it logs "Use default bcrypt-cost 10 instead of the invalid value 3" and hashes with its
    /// default (`auth.NewAuthStore`).
    pub fn bcrypt_cost_in_use(&self) -> (u32, Option<String>) {
        if (4..=31).contains(&self.bcrypt_cost) {
            return (self.bcrypt_cost, None);
        }
        let warning = format!(
            "Use default bcrypt-cost {DEFAULT_BCRYPT_COST} instead of the invalid value {}",
            self.bcrypt_cost
        );
        (DEFAULT_BCRYPT_COST, Some(warning))
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let sides = [
            (
                "",
                &self.cert_file,
                &self.key_file,
                &self.trusted_ca_file,
                self.client_cert_auth,
                &self.listen_client_urls,
            ),
            (
                "peer-",
                &self.peer_cert_file,
                &self.peer_key_file,
                &self.peer_trusted_ca_file,
                self.peer_client_cert_auth,
                &self.listen_peer_urls,
            ),
        ];
        for (p, cert, key, ca, auth, urls) in sides {
            if cert.is_some() != key.is_some() {
                return err(format!(
                    "--{p}cert-file and --{p}key-file must be given together"
                ));
            }
            if auth && ca.is_none() {
                return err(format!(
                    "--{p}client-cert-auth requires --{p}trusted-ca-file"
                ));
            }
            let any_https = urls.iter().any(|u| u.starts_with("https://"));
            if any_https && cert.is_none() {
                let flag = if p.is_empty() {
                    "listen-client-urls"
                } else {
                    "listen-peer-urls"
                };
                return err(format!(
                    "--{flag} uses https but no TLS certificate was given: set --{p}cert-file and --{p}key-file"
                ));
            }
            if auth && !any_https {
                return err(format!(
                    "--{p}client-cert-auth needs https:// URLs in the listen URLs"
                ));
            }
        }
        Ok(())
    }

    /// The static member list (etcd's default when neither it nor --discovery-srv is given).
    pub fn initial_cluster_or_default(&self) -> String {
        self.initial_cluster.clone().unwrap_or_else(|| {
            let urls = self.initial_advertise_peer_urls.iter();
            urls.map(|u| format!("{}={u}", self.name))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// This member must be listed in the initial cluster, with exactly its advertised peer URLs.
    pub fn validate_membership(&self) -> Result<(), ConfigError> {
        let members = parse_initial_cluster(&self.initial_cluster_or_default())?;
        let mine: Vec<&String> = members
            .iter()
            .filter(|(n, _)| n == &self.name)
            .map(|(_, u)| u)
            .collect();
        if mine.is_empty() {
            return err(format!(
                "{} not listed in the initial cluster config",
                self.name
            ));
        }
        let mut a: Vec<&String> = mine;
        let mut b: Vec<&String> = self.initial_advertise_peer_urls.iter().collect();
        a.sort();
        b.sort();
        if a != b {
            return err(format!(
                "{} has different advertised URLs in the cluster and advertised peer URLs list",
                self.name
            ));
        }
        Ok(())
    }

    /// This member's entries from `--initial-cluster`, or all members (name, peer URLs) grouped by name.
    pub fn initial_members(&self) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (n, u) in parse_initial_cluster(&self.initial_cluster_or_default())? {
            match out.iter_mut().find(|(m, _)| *m == n) {
                Some((_, urls)) => urls.push(u),
                None => out.push((n, vec![u])),
            }
        }
        Ok(out)
    }
}
