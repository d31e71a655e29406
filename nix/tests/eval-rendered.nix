# Evaluates the module with a member file written by `provision render --format nix`:
#   nix-instantiate --eval --strict --json nix/tests/eval-rendered.nix --arg member OUT/nodes/infra0/cairn.nix
# Prints what a NixOS host would run, so a test can compare it with the env file rendered for Debian hosts.
{ member }:
let
  r = (import ./harness.nix) (import member);
  svc = r.out.systemd.services.cairn or { };
in
{
  inherit (r) typeErrors failedAssertions;
  environment = svc.environment or { };
  nftables = r.out.networking.nftables.tables.cairn.content or "";
  rsyslog = r.out.services.rsyslogd.extraConfig or "";
}
