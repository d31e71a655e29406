# Evaluates the module (nixpkgs' real module system, harness.nix) with a member file written by
# `provision render --format nix`:
#   nix-instantiate -I nixpkgs-lib=PATH --eval --strict --json nix/tests/eval-rendered.nix --arg member OUT/nodes/infra0/cairn.nix
# Prints what a NixOS host would run, so a test can compare it with the env file rendered for Debian hosts.
# Type errors and unknown options fail the evaluation with NixOS's message.
{ member }:
let
  r = (import ./harness.nix { }) [ { services.cairn = import member; } ];
  svc = r.config.systemd.services.cairn or { };
in
builtins.seq r.forced {
  inherit (r) failedAssertions;
  environment = svc.environment or { };
  nftables = r.config.networking.nftables.tables.cairn.content or "";
  rsyslog = r.config.services.rsyslogd.extraConfig;
}
