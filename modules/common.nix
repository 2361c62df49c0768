# The part of `programs.cell` the NixOS and home-manager modules share: the options, the
# rendered and validated config file, and the `cell-<name>` wrappers. Each of the two
# modules imports this and says where the file and the packages go.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkOption
    mkPackageOption
    types
    ;

  cfg = config.programs.cell;
  cellLib = import ./cell { inherit lib pkgs; };
in
{
  options.programs.cell = {
    enable = mkEnableOption "cell, bubblewrap sandboxes for AI coding agents";

    package = mkPackageOption pkgs "cell" {
      extraDescription = ''
        The flake's `nixosModules.default` and `homeManagerModules.default` set this to the
        flake's own package (with `lib.mkDefault`).
      '';
    };

    cells = mkOption {
      type = types.attrsOf cellLib.cellType;
      default = { };
      description = ''
        The declared cells, by name (lowercase letters, digits, `-` and `_`). Each becomes an
        entry of the rendered `cell/config.json` and, unless `wrapper = false`, a
        `cell-<name>` command.
      '';
      example = literalExpression ''
        {
          claude = {
            agent.kind = "claude";
            network.allow = [ "github.com" ];
            limits.memory = "8G";
          };
          sandbox.network.mode = "none";
        }
      '';
    };

    defaultCell = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Cell used when `--cell` is not given. `null`: the only cell, or the one named `default`.";
      example = "claude";
    };

    runAs = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = ''
        The host account a root-launched cell runs as when the cell sets no `runAs` of its
        own (never `root`: a cell started by root is never root on the host). The NixOS
        module sets it to `cell`, a system account it creates; `null` leaves it to `cell`,
        which then uses the account named `cell` or refuses to start.
      '';
      example = "agent";
    };

    validateConfig = mkOption {
      type = types.bool;
      default = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
      defaultText = literalExpression "pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform";
      description = ''
        Check the rendered file at build time by running the packaged `cell` on it
        (`cell --config FILE plan`), so a configuration `cell` would refuse fails the build
        instead of the launch. Off when the build platform cannot run the package.
      '';
    };

    configFile = mkOption {
      type = types.package;
      readOnly = true;
      description = "The rendered (and, with `validateConfig`, validated) configuration file.";
    };

    document = mkOption {
      type = types.attrsOf types.anything;
      readOnly = true;
      internal = true;
      description = "The configuration as a Nix value, exactly as written to `configFile`.";
    };

    systemdRun = mkOption {
      type = types.str;
      internal = true;
      description = "The `systemd-run` the wrappers of cells with `limits` use.";
    };

    wrappers = mkOption {
      type = types.listOf types.package;
      readOnly = true;
      internal = true;
      description = "The `cell-<name>` commands (and `cell-<name>-chromium` for cells with `chromium.enable`).";
    };
  };

  config = {
    # Both hosts have `assertions`: the cells' checks are stated once, here.
    assertions = lib.mkIf cfg.enable (
      cellLib.assertions {
        prefix = "programs.cell.cells";
        inherit (cfg) cells defaultCell;
        defaultCellOption = "programs.cell.defaultCell";
      }
      ++ [ (cellLib.runAsAssertion "programs.cell.runAs" cfg.runAs) ]
    );

    programs.cell = {
      document = cellLib.render { inherit (cfg) cells defaultCell runAs; };
      configFile = cellLib.configFile {
        cell = cfg.package;
        inherit (cfg) document;
        validate = cfg.validateConfig;
      };
      wrappers = cellLib.wrappers {
        cell = cfg.package;
        inherit (cfg) cells configFile systemdRun;
      };
    };
  };
}
