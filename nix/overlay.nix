# Adds cairn (the node) and cairn-provision to nixpkgs.
final: prev: {
  cairn = final.callPackage ./package.nix { };
  cairn-provision = final.cairn.provision;
}
