# `fragments`: entrypoint fragments `cell-init` runs before the command (an attrset here,
# the JSON list sorted by order, then name, in ./render.nix).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkOption
    optional
    types
    ;

  fragmentModule =
    { name, config, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalExpression "<name>";
          description = "Fragment name (letters, digits, `-`, `_`). Defaults to the attribute name.";
        };
        order = mkOption {
          type = types.ints.unsigned;
          default = 50;
          description = ''
            Position: fragments run by order, then name. Built-ins use 15 (patches),
            20 (state-links), 22 (chromium-singleton) and 30 (mcp).
          '';
        };
        script = mkOption {
          type = types.nullOr types.lines;
          default = null;
          description = ''
            Shell script run as the fragment; sets `command` to it (written with
            `pkgs.writeShellScript`). Mutually exclusive with setting `command`.
          '';
          example = "git config --global --add safe.directory \"$PWD\"";
        };
        command = mkOption {
          type = types.listOf types.str;
          default = optional (
            config.script != null
          ) "${pkgs.writeShellScript "cell-fragment-${config.name}" config.script}";
          defaultText = literalExpression ''[ "''${pkgs.writeShellScript "cell-fragment-<name>" script}" ]'';
          description = "Host executable (an absolute path, bound read-only) and its arguments.";
          example = literalExpression ''[ "''${./setup.sh}" "--quiet" ]'';
        };
        onFailure = mkOption {
          type = types.enum [
            "abort"
            "warn"
          ];
          default = "abort";
          description = "`abort`: the cell does not start. `warn`: logged, the cell starts anyway.";
        };
        timeoutSeconds = mkOption {
          type = types.ints.positive;
          default = 60;
          description = "Seconds before the fragment is killed and counted as failed.";
        };
      };
    };
in
{
  options.fragments = mkOption {
    type = types.attrsOf (types.submodule fragmentModule);
    default = { };
    description = "Entrypoint fragments `cell-init` runs before the command, by `order`, then name.";
    example = literalExpression ''
      {
        git-safe-dir = {
          order = 40;
          script = "git config --global --add safe.directory \"$PWD\"";
        };
      }
    '';
  };

  config.assertions.fragments =
    at:
    lib.concatLists (
      lib.mapAttrsToList (fname: f: [
        {
          assertion = builtins.match "[A-Za-z0-9_-]+" f.name != null;
          message = "${at}.fragments.${fname}.name must be letters, digits, `-` and `_`; got \"${f.name}\".";
        }
        {
          assertion = f.command != [ ] && lib.hasPrefix "/" (builtins.head f.command);
          message = "${at}.fragments.${fname}.command must start with an absolute host path (or set ${at}.fragments.${fname}.script).";
        }
      ]) config.fragments
    );
}
