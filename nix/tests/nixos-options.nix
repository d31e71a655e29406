# The few NixOS options nix/module.nix writes into, declared with loose types as NixOS would accept the
# values (the NixOS modules that really declare them are not in nixpkgs' lib). Loose, but typed where the
# merge matters: lists concatenate, `lines` join, unit settings keep mkForce/mkDefault priorities.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  # Anything else a definition sets is kept as is (freeform), like NixOS's own open-ended unit options.
  open = options: types.submodule { freeformType = types.attrsOf types.anything; inherit options; };
  strList = mkOption { type = types.listOf types.str; default = [ ]; };
  unit = open {
    wantedBy = strList;
    after = strList;
    wants = strList;
    environment = mkOption { type = types.attrsOf (types.nullOr types.str); default = { }; };
    # NixOS's unitOption: a scalar or a list of them per systemd setting.
    serviceConfig = mkOption {
      type = types.attrsOf (types.oneOf [ types.bool types.int types.str (types.listOf types.str) ]);
      default = { };
    };
  };
in
{
  options = {
    assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    warnings = mkOption { type = types.listOf types.str; default = [ ]; };
    users.users = mkOption { type = types.attrsOf (open { }); default = { }; };
    users.groups = mkOption { type = types.attrsOf (open { }); default = { }; };
    systemd.services = mkOption { type = types.attrsOf unit; default = { }; };
    networking.nftables.enable = mkOption { type = types.bool; default = false; };
    networking.nftables.tables = mkOption {
      type = types.attrsOf (open {
        family = mkOption { type = types.str; };
        content = mkOption { type = types.lines; default = ""; };
      });
      default = { };
    };
    services.rsyslogd.enable = mkOption { type = types.bool; default = false; };
    services.rsyslogd.extraConfig = mkOption { type = types.lines; default = ""; };
  };
}
