# NixOS module: `programs.cell`. Writes /etc/cell/config.json (the system-wide config
# `cell` reads when neither --config, $CELL_CONFIG nor a user config is given) and installs
# `cell` and a `cell-<name>` command per cell. The rendered file is validated at build
# time: `configFile` is a derivation that runs the packaged `cell` on it, and everything
# (the /etc entry and the wrappers) depends on that derivation.
#
# Cells started by root never run as root: every cell renders a `runAs` account, by default
# `cell`, a system user and group this module creates (home /var/lib/cell), and the
# assertions refuse root, a uid 0 or gid 0 account, and a cell left without an account.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.programs.cell;
  # The accounts root-launched cells become.
  accounts = lib.unique (
    lib.mapAttrsToList (_: c: if c.runAs == null then cfg.runAs else c.runAs) cfg.cells ++ [ cfg.runAs ]
  );
  notRoot =
    account:
    let
      user = config.users.users.${account} or { };
      group = config.users.groups.${user.group or ""} or { };
    in
    {
      assertion =
        account != null && account != "root" && (user.uid or null) != 0 && (group.gid or null) != 0;
      message =
        if account == null then
          "programs.cell.runAs is null, so a cell started by root would have no account to run as; set it (the default is \"cell\", a system account this module creates) or set every cell's runAs."
        else
          "programs.cell.runAs (or a cell's runAs) names \"${account}\", which is root or has uid 0 or gid 0; a cell started by root must never be root on the host: name an unprivileged account such as the default \"cell\".";
    };
in
{
  imports = [ ./common.nix ];

  config = lib.mkMerge [
    {
      programs.cell.systemdRun = lib.mkDefault "${lib.getBin pkgs.systemd}/bin/systemd-run";
      programs.cell.runAs = lib.mkDefault "cell";
    }
    (lib.mkIf cfg.enable {
      environment.etc."cell/config.json".source = cfg.configFile;
      environment.systemPackages = [ cfg.package ] ++ cfg.wrappers;
      assertions = map notRoot accounts;
    })
    (lib.mkIf (cfg.enable && builtins.elem "cell" accounts) {
      users.users.cell = {
        isSystemUser = true;
        group = "cell";
        home = "/var/lib/cell";
        createHome = true;
        description = "cell sandboxes started by root";
      };
      users.groups.cell = { };
    })
  ];
}
