# Evaluates one case of refusals.nix, expected to fail with its message on stderr:
#   nix-instantiate -I nixpkgs-lib=PATH --eval --strict nix/tests/eval-refused.nix --argstr case bad-cluster-state
{ case }:
let
  r = (import ./harness.nix { }) (import ./refusals.nix).${case}.modules;
in
builtins.seq r.forced r.failedAssertions
