# NixOS module: services.cairn runs one member of a cairn cluster.
# Option names follow etcd's flags (camelCased); each becomes the matching CAIRN_* environment variable.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.cairn;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types concatStringsSep mapAttrsToList
    optional optionals optionalAttrs filterAttrs hasPrefix any attrNames elem;

  joinUrls = concatStringsSep ",";
  flag = b: if b then "true" else "false";
  usesTls = urls: any (hasPrefix "https://") urls;

  initialClusterString =
    joinUrls (mapAttrsToList (name: url: "${name}=${url}") cfg.initialCluster);

  environment = filterAttrs (_: v: v != null) ({
    CAIRN_NAME = cfg.name;
    CAIRN_DATA_DIR = cfg.dataDir;
    CAIRN_LISTEN_CLIENT_URLS = joinUrls cfg.listenClientUrls;
    CAIRN_ADVERTISE_CLIENT_URLS = joinUrls cfg.advertiseClientUrls;
    CAIRN_LISTEN_PEER_URLS = joinUrls cfg.listenPeerUrls;
    CAIRN_INITIAL_ADVERTISE_PEER_URLS = joinUrls cfg.initialAdvertisePeerUrls;
    CAIRN_INITIAL_CLUSTER_TOKEN = cfg.initialClusterToken;
    CAIRN_INITIAL_CLUSTER_STATE = cfg.initialClusterState;
    CAIRN_INITIAL_CLUSTER = if cfg.initialCluster == { } then null else initialClusterString;
    CAIRN_DISCOVERY_SRV = cfg.discoverySrv;
    CAIRN_DISCOVERY_SRV_NAME = cfg.discoverySrvName;
    CAIRN_DISCOVERY_TOKEN = cfg.discovery.token;
    CAIRN_DISCOVERY_ENDPOINTS = if cfg.discovery.endpoints == [ ] then null else joinUrls cfg.discovery.endpoints;
    CAIRN_DISCOVERY_CACERT = cfg.discovery.caFile;
    CAIRN_DISCOVERY_CERT = cfg.discovery.certFile;
    CAIRN_DISCOVERY_KEY = cfg.discovery.keyFile;
    CAIRN_CERT_FILE = cfg.tls.certFile;
    CAIRN_KEY_FILE = cfg.tls.keyFile;
    CAIRN_TRUSTED_CA_FILE = cfg.tls.trustedCaFile;
    CAIRN_PEER_CERT_FILE = cfg.tls.peerCertFile;
    CAIRN_PEER_KEY_FILE = cfg.tls.peerKeyFile;
    CAIRN_PEER_TRUSTED_CA_FILE = cfg.tls.peerTrustedCaFile;
  } // optionalAttrs (usesTls cfg.discovery.endpoints) {
    # etcd 3.6's --discovery-insecure-transport defaults to true; https endpoints need it off.
    CAIRN_DISCOVERY_INSECURE_TRANSPORT = "false";
  } // optionalAttrs (cfg.tls.trustedCaFile != null) {
    CAIRN_CLIENT_CERT_AUTH = flag cfg.tls.clientCertAuth;
  } // optionalAttrs (cfg.tls.peerTrustedCaFile != null) {
    CAIRN_PEER_CLIENT_CERT_AUTH = flag cfg.tls.peerClientCertAuth;
  });

  fileOption = description: mkOption {
    type = types.nullOr types.str;
    default = null;
    inherit description;
  };

  # nftables rules: the peer port only from the other members, the client port only from allowed networks.
  saddrSet = addrs: "{ ${concatStringsSep ", " addrs} }";
  v4 = builtins.filter (a: builtins.match ".*:.*" a == null);
  v6 = builtins.filter (a: builtins.match ".*:.*" a != null);
  rulesFor = port: sources:
    optional (v4 sources != [ ]) "ip saddr ${saddrSet (v4 sources)} tcp dport ${toString port} accept"
    ++ optional (v6 sources != [ ]) "ip6 saddr ${saddrSet (v6 sources)} tcp dport ${toString port} accept";
  nftRules = concatStringsSep "\n      " (
    rulesFor cfg.peerPort cfg.firewall.peerSources
    ++ rulesFor cfg.clientPort cfg.firewall.clientSources
    ++ [ "tcp dport { ${toString cfg.clientPort}, ${toString cfg.peerPort} } drop" ]);
in
{
  options.services.cairn = {
    enable = mkEnableOption "the cairn etcd-compatible key-value server";

    package = mkOption {
      type = types.package;
      default = pkgs.cairn;
      description = "The cairn package (from this flake's overlay).";
    };

    name = mkOption {
      type = types.str;
      description = "Member name (--name); must be a key of initialCluster in static bootstrap.";
    };

    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/cairn";
      description = "Data directory (--data-dir); created by systemd's StateDirectory.";
    };

    clientPort = mkOption { type = types.port; default = 2379; description = "Client port, for the firewall."; };
    peerPort = mkOption { type = types.port; default = 2380; description = "Peer port, for the firewall."; };

    listenClientUrls = mkOption {
      type = types.listOf types.str;
      default = [ "http://127.0.0.1:2379" ];
      description = "--listen-client-urls (IP addresses, not names).";
    };
    advertiseClientUrls = mkOption {
      type = types.listOf types.str;
      default = cfg.listenClientUrls;
      description = "--advertise-client-urls.";
    };
    listenPeerUrls = mkOption {
      type = types.listOf types.str;
      default = [ "http://127.0.0.1:2380" ];
      description = "--listen-peer-urls (IP addresses, not names).";
    };
    initialAdvertisePeerUrls = mkOption {
      type = types.listOf types.str;
      default = cfg.listenPeerUrls;
      description = "--initial-advertise-peer-urls.";
    };

    initialCluster = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { infra0 = "https://10.0.1.10:2380"; infra1 = "https://10.0.1.11:2380"; };
      description = "Static bootstrap: member name to peer URL (--initial-cluster). Empty with discoverySrv.";
    };
    initialClusterToken = mkOption { type = types.str; default = "etcd-cluster"; description = "--initial-cluster-token."; };
    initialClusterState = mkOption {
      type = types.enum [ "new" "existing" ];
      default = "new";
      description = "--initial-cluster-state: new to bootstrap, existing to join after `etcdctl member add`.";
    };

    discoverySrv = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "DNS SRV bootstrap domain (--discovery-srv); exclusive with initialCluster.";
    };
    discoverySrvName = mkOption { type = types.nullOr types.str; default = null; description = "--discovery-srv-name suffix."; };

    discovery = {
      token = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "v3 discovery token (--discovery-token); exclusive with initialCluster and discoverySrv.";
      };
      endpoints = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "https://10.0.9.1:2379" ];
        description = "Client URLs of the discovery cluster (--discovery-endpoints).";
      };
      caFile = fileOption "CA of the discovery cluster's server certificates (--discovery-cacert).";
      certFile = fileOption "Client certificate for the discovery cluster (--discovery-cert).";
      keyFile = fileOption "Key of discovery.certFile (--discovery-key).";
    };

    tls = {
      certFile = fileOption "Server certificate for the client port (--cert-file).";
      keyFile = fileOption "Key of certFile (--key-file); readable by the cairn user only.";
      trustedCaFile = fileOption "CA that signs client certificates (--trusted-ca-file).";
      clientCertAuth = mkOption { type = types.bool; default = true; description = "--client-cert-auth (when trustedCaFile is set)."; };
      peerCertFile = fileOption "Peer certificate (--peer-cert-file).";
      peerKeyFile = fileOption "Key of peerCertFile (--peer-key-file).";
      peerTrustedCaFile = fileOption "CA that signs peer certificates (--peer-trusted-ca-file).";
      peerClientCertAuth = mkOption { type = types.bool; default = true; description = "--peer-client-cert-auth (when peerTrustedCaFile is set)."; };
    };

    extraFlags = mkOption { type = types.listOf types.str; default = [ ]; description = "Extra command-line flags."; };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the peer port to firewall.peerSources and the client port to firewall.clientSources (nftables).";
    };
    firewall = {
      peerSources = mkOption { type = types.listOf types.str; default = [ ]; description = "Addresses of the other members."; };
      clientSources = mkOption { type = types.listOf types.str; default = [ ]; description = "Networks allowed to reach the client port."; };
    };

    logFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/log/cairn/cairn.log";
      description = "When set, rsyslog writes program `cairn` here and stops it reaching other logs; journald always has it.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = builtins.length (builtins.filter (x: x) [
            (cfg.initialCluster != { })
            (cfg.discoverySrv != null)
            (cfg.discovery.token != null)
          ]) == 1;
          message = "services.cairn: set exactly one of initialCluster (static bootstrap), discoverySrv (DNS SRV bootstrap) or discovery.token (v3 discovery).";
        }
        {
          assertion = (cfg.discovery.token == null) == (cfg.discovery.endpoints == [ ]);
          message = "services.cairn: discovery.token and discovery.endpoints go together (both --discovery-token and --discovery-endpoints must be set).";
        }
        {
          assertion = cfg.initialCluster == { } || elem cfg.name (attrNames cfg.initialCluster);
          message = "services.cairn: ${cfg.name} not listed in the initial cluster config (services.cairn.initialCluster).";
        }
        {
          assertion = !(usesTls (cfg.listenClientUrls ++ cfg.advertiseClientUrls)) || (cfg.tls.certFile != null && cfg.tls.keyFile != null);
          message = "services.cairn: https client URLs need tls.certFile and tls.keyFile.";
        }
        {
          assertion = !(usesTls (cfg.listenPeerUrls ++ cfg.initialAdvertisePeerUrls)) || (cfg.tls.peerCertFile != null && cfg.tls.peerKeyFile != null);
          message = "services.cairn: https peer URLs need tls.peerCertFile and tls.peerKeyFile.";
        }
        {
          assertion = !cfg.openFirewall || cfg.firewall.peerSources != [ ];
          message = "services.cairn: openFirewall needs firewall.peerSources (the other members' addresses).";
        }
      ];

      users.users.cairn = { isSystemUser = true; group = "cairn"; description = "cairn key-value server"; };
      users.groups.cairn = { };

      systemd.services.cairn = {
        description = "cairn: etcd-compatible key-value server";
        wantedBy = [ "multi-user.target" ];
        after = [ "network-online.target" ];
        wants = [ "network-online.target" ];
        inherit environment;
        serviceConfig = {
          Type = "notify";
          ExecStart = concatStringsSep " " ([ "${cfg.package}/bin/cairn" ] ++ map lib.escapeShellArg cfg.extraFlags);
          User = "cairn";
          Group = "cairn";
          StateDirectory = "cairn";
          StateDirectoryMode = "0700";
          WorkingDirectory = cfg.dataDir;
          Restart = "on-failure";
          RestartSec = 5;
          LimitNOFILE = 65536;
          SyslogIdentifier = "cairn";
          # Sandboxing: cairn needs its data dir, its sockets and nothing else.
          NoNewPrivileges = true;
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          PrivateDevices = true;
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectKernelLogs = true;
          ProtectControlGroups = true;
          ProtectClock = true;
          ProtectHostname = true;
          ProtectProc = "invisible";
          RestrictNamespaces = true;
          RestrictRealtime = true;
          RestrictSUIDSGID = true;
          LockPersonality = true;
          MemoryDenyWriteExecute = true;
          RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
          CapabilityBoundingSet = "";
          SystemCallArchitectures = "native";
          SystemCallFilter = [ "@system-service" "~@privileged" "~@resources" ];
          UMask = "0077";
        };
      };
    }

    (mkIf cfg.openFirewall {
      networking.nftables.enable = true;
      networking.nftables.tables.cairn = {
        family = "inet";
        content = ''
          chain input {
            type filter hook input priority -10; policy accept;
            iifname "lo" accept
            ${nftRules}
          }
        '';
      };
    })

    (mkIf (cfg.logFile != null) {
      services.rsyslogd.enable = true;
      services.rsyslogd.extraConfig = ''
        if $programname == 'cairn' then ${cfg.logFile}
        & stop
      '';
    })
  ]);
}
