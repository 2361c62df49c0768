# The shared cell: `programs.cell.cells.<name>` of the NixOS and home-manager modules
# (../common.nix) and the one cell of `lib.mkCell` (../../pkgs/mk-cell.nix).
#
# `cellModule` is the cell submodule: one file per feature below, each declaring its
# options and the assertions about them (every message names the option to change). What
# is derived from evaluated cells lives beside it: ./render.nix (the JSON `cell` reads,
# schema version 1, rust/docs/cell-config.schema.json), ./wrappers.nix (the
# `cell-<name>` commands) and ./config-file.nix (the rendered file, checked by
# `cell check` at build time).
{ lib, pkgs }:
let
  inherit (lib) mkOption types;

  cellLib = import ./lib.nix { inherit lib; };
  render = import ./render.nix { inherit lib; };
  wrappers = import ./wrappers.nix { inherit lib pkgs; };

  # The features, one file each; their assertions are listed in this order.
  features = [
    "name"
    "run-as"
    "agent"
    "network"
    "ports"
    "command"
    "directories"
    "state"
    "nix-daemon"
    "binds"
    "environment"
    "security"
    "limits"
    "fragments"
    "mcp"
    "browser"
    "project"
    "sidecars"
  ];

  cellModule = {
    imports = map (f: ./. + "/${f}.nix") features;

    options.assertions = mkOption {
      type = types.attrsOf (types.functionTo (types.listOf types.unspecified));
      default = { };
      internal = true;
      description = ''
        The cell's assertions (`{ assertion; message; }`) by feature file, each a function
        of the cell's option path (such as `"programs.cell.cells.<name>"`), which the
        messages name.
      '';
    };

    # The feature files build scripts and take package defaults from the caller's pkgs.
    config._module.args.pkgs = pkgs;
  };

  # One cell's assertions: the features' in the order above, then any others by name.
  cellAssertions =
    at: cell:
    let
      defined = builtins.attrNames cell.assertions;
      ordered =
        builtins.filter (f: builtins.elem f defined) features ++ lib.subtractLists features defined;
    in
    lib.concatMap (f: cell.assertions.${f} at) ordered;

  # Every assertion of `cells`, an attrset of evaluated cells found at the option path
  # `prefix` (e.g. "programs.cell.cells"), and that `defaultCell` (the option
  # `defaultCellOption`) names one of them.
  assertions =
    {
      prefix,
      cells,
      defaultCell,
      defaultCellOption,
    }:
    lib.concatLists (lib.mapAttrsToList (name: cellAssertions "${prefix}.${name}") cells)
    ++ [
      {
        assertion = defaultCell == null || cells ? ${defaultCell};
        message = "${defaultCellOption} is \"${toString defaultCell}\", but no cell has that name; declare ${prefix}.${toString defaultCell} or pick one of: ${
          if cells == { } then "(none declared)" else lib.concatStringsSep ", " (builtins.attrNames cells)
        }.";
      }
    ];
in
{
  inherit cellModule assertions;
  inherit (cellLib) agentKinds runAsAssertion;
  cellType = types.submodule cellModule;
  inherit (render) render renderCell schemaVersion;
  inherit (wrappers)
    chromiumWrapper
    launchArgv
    wrapper
    wrappers
    ;
  configFile = import ./config-file.nix { inherit lib pkgs; };
}
