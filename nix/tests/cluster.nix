# NixOS VM test: three members bootstrap statically over plain http on a private network, then
# etcdctl reports every endpoint healthy and a write on one member is read on another.
{ pkgs, module }:
let
  addr = n: "192.168.1.${toString n}";
  peers = { m1 = "http://${addr 1}:2380"; m2 = "http://${addr 2}:2380"; m3 = "http://${addr 3}:2380"; };
  member = name: n: { ... }: {
    imports = [ module ];
    networking.interfaces.eth1.ipv4.addresses = [{ address = addr n; prefixLength = 24; }];
    networking.firewall.enable = false;
    environment.systemPackages = [ pkgs.etcd_3_4 ];
    services.cairn = {
      enable = true;
      inherit name;
      listenClientUrls = [ "http://${addr n}:2379" "http://127.0.0.1:2379" ];
      advertiseClientUrls = [ "http://${addr n}:2379" ];
      listenPeerUrls = [ "http://${addr n}:2380" ];
      initialCluster = peers;
      initialClusterToken = "nixos-test";
    };
  };
in
pkgs.testers.runNixOSTest {
  name = "cairn-cluster";
  nodes = { m1 = member "m1" 1; m2 = member "m2" 2; m3 = member "m3" 3; };
  testScript = ''
    start_all()
    for m in [m1, m2, m3]:
        m.wait_for_unit("cairn.service")
    endpoints = "http://${addr 1}:2379,http://${addr 2}:2379,http://${addr 3}:2379"
    m1.wait_until_succeeds(f"ETCDCTL_API=3 etcdctl --endpoints={endpoints} endpoint health", timeout=60)
    m1.succeed("ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 put greeting hello")
    out = m2.succeed("ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 get greeting --print-value-only")
    assert out.strip() == "hello", out
  '';
}
