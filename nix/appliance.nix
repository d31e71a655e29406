# Example appliance: member infra0 of the seeds' cluster. Certificates and keys come from
# `provision render examples/static3.yaml -o out` (out/nodes/infra0/pki), copied to /etc/cairn/pki at first
# boot (keys are never put in the Nix store).
{ ... }:
{
  system.stateVersion = "24.11";
  boot.loader.grub.device = "/dev/vda";
  fileSystems."/" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; };
  networking.hostName = "infra0";
  networking.interfaces.eth0.ipv4.addresses = [{ address = "10.0.1.10"; prefixLength = 24; }];
  services.openssh.enable = true;

  services.cairn = {
    enable = true;
    name = "infra0";
    listenClientUrls = [ "https://10.0.1.10:2379" "https://127.0.0.1:2379" ];
    advertiseClientUrls = [ "https://10.0.1.10:2379" ];
    listenPeerUrls = [ "https://10.0.1.10:2380" ];
    initialCluster = {
      infra0 = "https://10.0.1.10:2380";
      infra1 = "https://10.0.1.11:2380";
      infra2 = "https://10.0.1.12:2380";
    };
    initialClusterToken = "etcd-cluster-1";
    tls = {
      certFile = "/etc/cairn/pki/server.crt";
      keyFile = "/etc/cairn/pki/server.key";
      trustedCaFile = "/etc/cairn/pki/ca.crt";
      peerCertFile = "/etc/cairn/pki/peer.crt";
      peerKeyFile = "/etc/cairn/pki/peer.key";
      peerTrustedCaFile = "/etc/cairn/pki/ca.crt";
    };
    openFirewall = true;
    firewall = { peerSources = [ "10.0.1.11" "10.0.1.12" ]; clientSources = [ "10.0.0.0/8" ]; };
    logFile = "/var/log/cairn/cairn.log";
  };
}
