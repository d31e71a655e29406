# A bootable qcow2 of a NixOS configuration that enables services.cairn (nixpkgs' make-disk-image).
{ nixpkgs, config }:
import "${nixpkgs}/nixos/lib/make-disk-image.nix" {
  inherit config;
  inherit (config._module.args) pkgs;
  lib = nixpkgs.lib;
  format = "qcow2";
  diskSize = "auto";
  partitionTableType = "legacy";
}
