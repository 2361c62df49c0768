# The launchers: `cell-<name>` for every cell with `wrapper` (the default), and
# `cell-<name>-chromium` for those with `chromium.enable` too. Each runs `cell` with the
# config file it was built with, named explicitly, so $CELL_CONFIG or a user config cannot
# swap it.
{ lib, pkgs }:
let
  inherit (import ./lib.nix { inherit lib; }) agentKinds;

  # The argv of the `cell-<name>` wrapper, before the user's own arguments: for a cell that
  # declares `limits`, a transient systemd user scope with its cgroup delegated to the
  # launcher (`Delegate=yes`), in which `cell` makes the cell's own group and writes the
  # limits of the rendered config (the same numbers `cell run` applies anywhere else); then
  # `cell` with the config file.
  launchArgv =
    {
      # The package whose `cell` runs.
      cell,
      configFile,
      name,
      # The evaluated cell.
      settings,
      # The `systemd-run` of the scope.
      systemdRun,
      # `cell <kind>` for a built-in agent, else `cell run`.
      subcommand ?
        if settings.agent != null && builtins.elem settings.agent.kind agentKinds then
          settings.agent.kind
        else
          "run",
    }:
    let
      declared = lib.filterAttrs (n: v: v != null && n != "unsafeNoLimits") settings.limits != { };
      scope = lib.optionals declared [
        systemdRun
        "--user"
        "--scope"
        "--quiet"
        "--collect"
        "-p"
        "Delegate=yes"
        "--"
      ];
    in
    scope
    ++ [
      (lib.getExe cell)
      "--config"
      "${configFile}"
      subcommand
      "--cell"
      name
    ];

  # A `cell-<name>` command: the argv above, then the user's arguments.
  wrapper =
    args:
    pkgs.writeShellScriptBin "cell-${args.name}" ''
      exec ${lib.escapeShellArgs (launchArgv args)} "$@"
    '';

  # `cell-<name>-chromium`: `cell --config <file> run --cell <name> --display
  # "${CELL_DISPLAY:-auto}" -- <launcher> "$@"`: the window on the user's Wayland display
  # (`cell` explains the choices when there is none; CELL_DISPLAY=x11 shares an X11 display
  # with this browser only), inside a transient scope when the cell has limits, like
  # `cell-<name>`. The launcher (./browser.nix) runs inside the cell.
  chromiumWrapper =
    { name, settings, ... }@args:
    pkgs.writeShellScriptBin "cell-${name}-chromium" ''
      exec ${
        lib.escapeShellArgs (launchArgv (args // { subcommand = "run"; }))
      } --display "''${CELL_DISPLAY:-auto}" -- ${lib.escapeShellArg "${settings.chromium.launcher}"} "$@"
    '';

  # Every command of `cells` (evaluated), in name order: `cell-<name>`, then
  # `cell-<name>-chromium` when the cell has `chromium.enable`.
  wrappers =
    {
      cell,
      configFile,
      systemdRun,
      cells,
    }:
    lib.concatLists (
      lib.mapAttrsToList (
        name: settings:
        let
          args = {
            inherit
              cell
              configFile
              systemdRun
              name
              settings
              ;
          };
        in
        [ (wrapper args) ] ++ lib.optional settings.chromium.enable (chromiumWrapper args)
      ) (lib.filterAttrs (_: c: c.wrapper) cells)
    );
in
{
  inherit
    chromiumWrapper
    launchArgv
    wrapper
    wrappers
    ;
}
