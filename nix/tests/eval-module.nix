# Evaluates nix/module.nix with nixpkgs' real module system (harness.nix) against sample members and checks
# the assembled configuration:
#   nix-instantiate -I nixpkgs-lib=PATH --eval --strict --json nix/tests/eval-module.nix
# prints the names of the passed cases, or fails with the first mismatch.
let
  harness = import ./harness.nix { };
  inherit (harness { }) lib;
  # Every case forces all its defined options first, so no type error hides behind laziness.
  eval = modules: let r = harness modules; in builtins.seq r.forced r;
  evalMember = cairn: eval [ { services.cairn = cairn; } ];

  # The example appliance's member, with an IPv6 client network added to exercise the ip6 rules.
  appliance = (import ../appliance.nix { }).services.cairn;
  infra0 = appliance // {
    firewall = appliance.firewall // { clientSources = appliance.firewall.clientSources ++ [ "fd00::/8" ]; };
  };

  expect = name: cond: detail: if cond then name else throw "eval-module: ${name} failed: ${builtins.toJSON detail}";
  contains = needle: hay: builtins.match ".*${needle}.*" (builtins.replaceStrings [ "\n" ] [ " " ] hay) != null;

  static = evalMember infra0;
  unit = static.config.systemd.services.cairn;
  staticEnv = unit.environment;
  nft = static.config.networking.nftables.tables.cairn.content;
  dns = evalMember (builtins.removeAttrs infra0 [ "initialCluster" ] // { discoverySrv = "example.com"; discoverySrvName = "prod"; });
  # etcd 3.6's v3 discovery: a token and the discovery cluster's endpoints instead of initialCluster.
  v3 = evalMember (builtins.removeAttrs infra0 [ "initialCluster" ] // {
    discovery = { token = "tok"; endpoints = [ "https://10.0.9.1:2379" ]; caFile = "/etc/cairn/pki/discovery-ca.crt"; };
  });
  v3Env = v3.config.systemd.services.cairn.environment;
  v3AndStatic = evalMember (infra0 // { discovery = { token = "tok"; endpoints = [ "https://10.0.9.1:2379" ]; }; });
  notListed = evalMember (infra0 // { name = "infra9"; });
  both = evalMember (infra0 // { discoverySrv = "example.com"; });
  noCerts = evalMember (infra0 // { tls = { }; });
  disabled = evalMember { name = "x"; };

  # A user's own module overriding the unit: mkForce beats the module's plain definition, mkDefault loses to it.
  forced = eval [
    { services.cairn = infra0; }
    {
      systemd.services.cairn.serviceConfig.Restart = lib.mkForce "always";
      systemd.services.cairn.serviceConfig.LimitNOFILE = lib.mkDefault 1024;
    }
  ];
  forcedConfig = forced.config.systemd.services.cairn.serviceConfig;

  # Two modules each adding extra flags: listOf concatenates, both reach ExecStart.
  flags = eval [
    { services.cairn = infra0 // { extraFlags = [ "--auto-compaction-retention=1" ]; }; }
    { services.cairn.extraFlags = [ "--quota-backend-bytes=8589934592" ]; }
  ];
  flagsExec = flags.config.systemd.services.cairn.serviceConfig.ExecStart;

  # Each refusal fails to evaluate (its message is checked by the system test through eval-refused.nix).
  refusals = import ./refusals.nix;
  refused = name: !(builtins.tryEval (let r = harness refusals.${name}.modules; in builtins.deepSeq [ r.forced r.failedAssertions ] true)).success;
in
[
  (expect "static-member-passes-assertions" (static.failedAssertions == [ ]) static.failedAssertions)
  (expect "initial-cluster-joined-like-etcd" (staticEnv.CAIRN_INITIAL_CLUSTER == "infra0=https://10.0.1.10:2380,infra1=https://10.0.1.11:2380,infra2=https://10.0.1.12:2380") staticEnv)
  (expect "client-cert-auth-on-with-ca" (staticEnv.CAIRN_CLIENT_CERT_AUTH == "true" && staticEnv.CAIRN_PEER_CLIENT_CERT_AUTH == "true") staticEnv)
  (expect "notify-unit-with-limits" (unit.serviceConfig.Type == "notify" && unit.serviceConfig.LimitNOFILE == 65536 && unit.wantedBy == [ "multi-user.target" ]) unit.serviceConfig)
  (expect "peer-port-open-only-to-members" (contains "ip saddr [{] 10.0.1.11, 10.0.1.12 [}] tcp dport 2380 accept" nft) nft)
  (expect "client-port-v6-networks" (contains "ip6 saddr [{] fd00::/8 [}] tcp dport 2379 accept" nft) nft)
  (expect "nftables-enabled-with-the-firewall" static.config.networking.nftables.enable static.config.networking.nftables)
  (expect "rsyslog-routes-and-stops" (contains "if [$]programname == 'cairn' then /var/log/cairn/cairn.log & stop" static.config.services.rsyslogd.extraConfig) static.config.services.rsyslogd.extraConfig)
  (expect "system-user-and-group" (static.config.users.users.cairn.isSystemUser && static.config.users.groups ? cairn) static.config.users)
  (expect "dns-bootstrap-has-no-initial-cluster" (dns.failedAssertions == [ ] && !(dns.config.systemd.services.cairn.environment ? CAIRN_INITIAL_CLUSTER) && dns.config.systemd.services.cairn.environment.CAIRN_DISCOVERY_SRV_NAME == "prod") dns.config.systemd.services.cairn.environment)
  (expect "v3-discovery-has-token-and-endpoints" (v3.failedAssertions == [ ] && !(v3Env ? CAIRN_INITIAL_CLUSTER) && v3Env.CAIRN_DISCOVERY_TOKEN == "tok" && v3Env.CAIRN_DISCOVERY_ENDPOINTS == "https://10.0.9.1:2379" && v3Env.CAIRN_DISCOVERY_INSECURE_TRANSPORT == "false" && v3Env.CAIRN_DISCOVERY_CACERT == "/etc/cairn/pki/discovery-ca.crt") v3Env)
  (expect "static-and-v3-discovery-together-are-refused" (builtins.any (contains "exactly one of initialCluster") v3AndStatic.failedAssertions) v3AndStatic.failedAssertions)
  (expect "name-missing-from-initial-cluster-is-refused" (builtins.any (contains "infra9 not listed in the initial cluster config") notListed.failedAssertions) notListed.failedAssertions)
  (expect "static-and-dns-together-are-refused" (builtins.any (contains "exactly one of initialCluster") both.failedAssertions) both.failedAssertions)
  (expect "https-without-certificates-is-refused" (builtins.length noCerts.failedAssertions == 2) noCerts.failedAssertions)
  (expect "disabled-module-adds-nothing" (disabled.config.systemd.services == { } && disabled.config.users.users == { } && disabled.config.assertions == [ ] && !disabled.config.networking.nftables.enable && disabled.config.services.rsyslogd.extraConfig == "") disabled.config.systemd.services)
  (expect "user-mkForce-overrides-a-unit-setting" (forcedConfig.Restart == "always" && forcedConfig.LimitNOFILE == 65536 && forcedConfig.Type == "notify") forcedConfig)
  (expect "extra-flags-from-two-modules-merge" (contains "/bin/cairn '--auto-compaction-retention=1' '--quota-backend-bytes=8589934592'" flagsExec || contains "/bin/cairn '--quota-backend-bytes=8589934592' '--auto-compaction-retention=1'" flagsExec) flagsExec)
] ++ map (name: expect "${name}-is-refused" (refused name) name) (builtins.attrNames refusals)
