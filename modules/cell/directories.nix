# The host directories a cell writes: the worktree, its persistent home and the patches
# rendezvous.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  inherit (import ./lib.nix { inherit lib; }) absoluteIfSet pathStr;
in
{
  options = {
    worktree = {
      path = mkOption {
        type = types.nullOr pathStr;
        default = null;
        description = ''
          Absolute host path of the worktree (bound read-write at the same path). `null`:
          the current directory at launch; `--workdir` overrides it.
        '';
        example = "/home/alice/src/project";
      };
      allowBroad = mkOption {
        type = types.bool;
        default = false;
        description = "Allow `/` or the host home directory as the worktree.";
      };
    };

    home.path = mkOption {
      type = types.nullOr pathStr;
      default = null;
      description = ''
        Absolute host directory holding the cell's persistent home. `null`:
        `$XDG_DATA_HOME/cell/<name>/home`.
      '';
      example = "/var/lib/cells/claude/home";
    };

    patches = mkOption {
      type = types.nullOr pathStr;
      default = null;
      description = "Host directory bound read-write at `/patches`, the rendezvous for `git format-patch` output.";
      example = "/home/alice/patches";
    };
  };

  config.assertions.directories =
    at:
    absoluteIfSet at "worktree.path" config.worktree.path
    ++ absoluteIfSet at "home.path" config.home.path
    ++ absoluteIfSet at "patches" config.patches;
}
