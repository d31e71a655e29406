# Evaluates nix/module.nix with nixpkgs' real module system (`lib.evalModules` from nixpkgs' lib, found as
# <nixpkgs-lib>: `nix-instantiate -I nixpkgs-lib=PATH`), plus the NixOS options it writes into
# (nixos-options.nix) and the given modules. Returns
#   { config; failedAssertions = assertion messages; forced = true once every defined option was evaluated }.
# `forced` matters because the module system is lazy: a wrong-typed value in an option nothing reads is
# only refused when something reads it, as NixOS's manual or a later change would.
{ lib ? import <nixpkgs-lib/lib> }:
modules:
let
  evaluated = lib.evalModules {
    modules = [ ../module.nix ./nixos-options.nix ] ++ modules;
    # A stand-in package: a store path is all `types.package` and the unit's ExecStart need.
    specialArgs.pkgs.cairn = {
      type = "derivation";
      name = "cairn-0.1.0";
      outPath = "/nix/store/00000000000000000000000000000000-cairn-0.1.0";
    };
  };
  inherit (evaluated) config options;
  defined = builtins.filter (o: o.isDefined) (lib.collect lib.isOption options);
in
{
  inherit config lib;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  forced = lib.deepSeq (map (o: o.value) defined) true;
}
