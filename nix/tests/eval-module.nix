# Evaluates nix/module.nix against sample clusters with our small lib (no nixpkgs needed) and checks the
# assembled configuration. `nix-instantiate --eval --strict --json nix/tests/eval-module.nix` prints the
# names of the passed cases, or fails with the first mismatch.
let
  eval = import ./harness.nix;

  # The example appliance's member, with an IPv6 client network added to exercise the ip6 rules.
  appliance = (import ../appliance.nix { }).services.cairn;
  infra0 = appliance // {
    firewall = appliance.firewall // { clientSources = appliance.firewall.clientSources ++ [ "fd00::/8" ]; };
  };

  expect = name: cond: detail: if cond then name else throw "eval-module: ${name} failed: ${builtins.toJSON detail}";
  contains = needle: hay: builtins.match ".*${needle}.*" (builtins.replaceStrings [ "\n" ] [ " " ] hay) != null;

  static = eval infra0;
  staticEnv = static.out.systemd.services.cairn.environment;
  dns = eval (builtins.removeAttrs infra0 [ "initialCluster" ] // { discoverySrv = "example.com"; discoverySrvName = "prod"; });
  notListed = eval (infra0 // { name = "infra9"; });
  both = eval (infra0 // { discoverySrv = "example.com"; });
  noCerts = eval (infra0 // { tls = { }; });
  badState = eval (infra0 // { initialClusterState = "bogus"; });
  typo = eval (infra0 // { initalCluster = { }; });
  disabled = eval { name = "x"; };
in
[
  (expect "static-member-passes-assertions" (static.failedAssertions == [ ] && static.typeErrors == [ ]) static.failedAssertions)
  (expect "initial-cluster-joined-like-etcd" (staticEnv.CAIRN_INITIAL_CLUSTER == "infra0=https://10.0.1.10:2380,infra1=https://10.0.1.11:2380,infra2=https://10.0.1.12:2380") staticEnv)
  (expect "client-cert-auth-on-with-ca" (staticEnv.CAIRN_CLIENT_CERT_AUTH == "true" && staticEnv.CAIRN_PEER_CLIENT_CERT_AUTH == "true") staticEnv)
  (expect "notify-unit-with-limits" (static.out.systemd.services.cairn.serviceConfig.Type == "notify" && static.out.systemd.services.cairn.serviceConfig.LimitNOFILE == 65536) static.out.systemd.services.cairn.serviceConfig)
  (expect "peer-port-open-only-to-members" (contains "ip saddr [{] 10.0.1.11, 10.0.1.12 [}] tcp dport 2380 accept" static.out.networking.nftables.tables.cairn.content) static.out.networking.nftables.tables.cairn.content)
  (expect "client-port-v6-networks" (contains "ip6 saddr [{] fd00::/8 [}] tcp dport 2379 accept" static.out.networking.nftables.tables.cairn.content) static.out.networking.nftables.tables.cairn.content)
  (expect "rsyslog-routes-and-stops" (contains "if [$]programname == 'cairn' then /var/log/cairn/cairn.log & stop" static.out.services.rsyslogd.extraConfig) static.out.services.rsyslogd.extraConfig)
  (expect "dns-bootstrap-has-no-initial-cluster" (dns.failedAssertions == [ ] && !(dns.out.systemd.services.cairn.environment ? CAIRN_INITIAL_CLUSTER) && dns.out.systemd.services.cairn.environment.CAIRN_DISCOVERY_SRV_NAME == "prod") dns.out.systemd.services.cairn.environment)
  (expect "name-missing-from-initial-cluster-is-refused" (builtins.any (contains "infra9 not listed in the initial cluster config") notListed.failedAssertions) notListed.failedAssertions)
  (expect "static-and-dns-together-are-refused" (builtins.any (contains "exactly one of initialCluster") both.failedAssertions) both.failedAssertions)
  (expect "https-without-certificates-is-refused" (builtins.length noCerts.failedAssertions == 2) noCerts.failedAssertions)
  (expect "bad-cluster-state-is-a-type-error" (badState.typeErrors == [ "services.cairn.initialClusterState: \"bogus\" is not a one of new, existing" ]) badState.typeErrors)
  (expect "misspelt-option-is-reported" (typo.typeErrors == [ "services.cairn.initalCluster: no such option" ]) typo.typeErrors)
  (expect "disabled-module-adds-nothing" (disabled.out == { }) disabled.out)
]
