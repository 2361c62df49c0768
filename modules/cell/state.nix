# `state`: persistent agent state kept in a host directory and linked into the cell's home.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  inherit (import ./lib.nix { inherit lib; }) absolute pathStr relative;

  stateModule = {
    options = {
      dir = mkOption {
        type = pathStr;
        description = "Host directory holding the state, bound read-write at `/run/cell/state`.";
        example = "/home/alice/.local/share/cell-state/claude";
      };
      links = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = ''
          Paths relative to `$HOME` that become links to the same relative path in `dir` at
          every start.
        '';
        example = [
          ".claude/skills"
          ".claude/settings.json"
        ];
      };
    };
  };
in
{
  options.state = mkOption {
    type = types.nullOr (types.submodule stateModule);
    default = null;
    description = "Persistent agent state kept in a host directory and linked into the cell's home.";
  };

  config.assertions.state =
    at:
    lib.optionals (config.state != null) (
      [ (absolute at "state.dir" config.state.dir) ]
      ++ lib.imap0 (i: relative at "state.links.[${toString i}]") config.state.links
    );
}
