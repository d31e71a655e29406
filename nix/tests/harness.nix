# Evaluates nix/module.nix for one `services.cairn` value with our small lib (no nixpkgs needed):
# { out = the assembled config; typeErrors = option/type problems; failedAssertions = assertion messages }.
let
  lib = import ./lib.nix;
  module = import ../module.nix;
  pkgs = { cairn = { outPath = "/nix/store/00000000000000000000000000000000-cairn-0.1.0"; }; };
in
user:
let
  declared = (module { inherit lib pkgs; config = config; }).options;
  applied = lib.applyOptions "services.cairn" declared.services.cairn user;
  config = { services.cairn = applied.value; };
  out = lib.resolve (module { inherit lib pkgs config; }).config;
in
{
  inherit out;
  typeErrors = applied.errors;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) (out.assertions or [ ]));
}
