# NixOS module: `programs.cell`. Writes /etc/cell/config.json (the system-wide config
# `cell` reads when neither --config, $CELL_CONFIG nor a user config is given) and installs
# `cell` and a `cell-<name>` command per cell. The rendered file is validated at build
# time: `configFile` is a derivation that runs the packaged `cell` on it, and everything
# (the /etc entry and the wrappers) depends on that derivation.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.programs.cell;
in
{
  imports = [ ./common.nix ];

  config = lib.mkMerge [
    { programs.cell.systemdRun = lib.mkDefault "${lib.getBin pkgs.systemd}/bin/systemd-run"; }
    (lib.mkIf cfg.enable {
      environment.etc."cell/config.json".source = cfg.configFile;
      environment.systemPackages = [ cfg.package ] ++ cfg.wrappers;
    })
  ];
}
