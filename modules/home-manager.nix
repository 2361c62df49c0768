# home-manager module: `programs.cell`, the same option tree as the NixOS module. Writes
# $XDG_CONFIG_HOME/cell/config.json (the per-user config `cell` reads) and adds `cell` and
# a `cell-<name>` command per cell to home.packages. The file is validated at build time
# like the NixOS module's.
{
  config,
  lib,
  ...
}:
let
  cfg = config.programs.cell;
in
{
  imports = [ ./common.nix ];

  config = lib.mkMerge [
    # The host's own systemd-run: it talks to the running user manager, which on a
    # non-NixOS host is not the one in nixpkgs.
    { programs.cell.systemdRun = lib.mkDefault "systemd-run"; }
    (lib.mkIf cfg.enable {
      xdg.configFile."cell/config.json".source = cfg.configFile;
      home.packages = [ cfg.package ] ++ cfg.wrappers;
    })
  ];
}
