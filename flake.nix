{
  description = "Cairn: an etcd-v3-compatible Raft key-value server and its provisioner";

  # The only input is nixpkgs; everything else is in this repository (nix/*.nix).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f (import nixpkgs {
        inherit system;
        overlays = [ self.overlays.default ];
      }));
    in
    {
      overlays.default = import ./nix/overlay.nix;

      packages = forAllSystems (pkgs: {
        cairn = pkgs.cairn;
        provision = pkgs.cairn-provision;
        default = pkgs.cairn;
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ pkgs.cairn ];
          packages = with pkgs; [ etcd_3_4 bind rsyslog nftables openssl ansible ];
        };
      });

      nixosModules.default = import ./nix/module.nix;

      # An example appliance: one member of the seeds' 3-member cluster (infra0).
      nixosConfigurations.appliance = nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        modules = [
          { nixpkgs.overlays = [ self.overlays.default ]; }
          self.nixosModules.default
          ./nix/appliance.nix
        ];
      };

      # A bootable qcow2 of the appliance (nixpkgs' make-disk-image).
      images.appliance = import ./nix/image.nix {
        inherit nixpkgs;
        config = self.nixosConfigurations.appliance.config;
      };

      checks = forAllSystems (pkgs: {
        inherit (pkgs) cairn;
        cluster = import ./nix/tests/cluster.nix { inherit pkgs; module = self.nixosModules.default; };
      });
    };
}
