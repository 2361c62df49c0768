# `command` (what `cell shell` and a bare `cell run` start) and `wrapper` (whether the
# cell gets a `cell-<name>` command: ./wrappers.nix).
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options = {
    command = mkOption {
      type = types.nullOr (types.nonEmptyListOf types.str);
      default = null;
      description = ''
        Command run by `cell shell` and by `cell run` without a command. `null`: the
        first of `bash`, `sh` found in the cell.
      '';
      example = [
        "bash"
        "-l"
      ];
    };

    wrapper = mkOption {
      type = types.bool;
      default = true;
      description = "Install a `cell-<name>` command that launches this cell.";
    };
  };

  config.assertions.command = at: [
    {
      assertion = config.command == null || builtins.head config.command != "";
      message = "${at}.command must start with a program name; got an empty string.";
    }
  ];
}
