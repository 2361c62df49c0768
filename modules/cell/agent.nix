# `agent`: the coding agent a cell runs (`cell <kind>`), or none.
{ config, lib, ... }:
let
  inherit (lib) literalExpression mkOption types;
  inherit (import ./lib.nix { inherit lib; }) agentKinds;

  agentModule = {
    options = {
      kind = mkOption {
        type = types.enum (agentKinds ++ [ "custom" ]);
        description = ''
          The agent: `claude`, `codex`, `gemini`, `opencode`, or `custom` (then
          `agent.command` is required). The `cell-<name>` wrapper of a built-in kind runs
          `cell <kind>`; of a custom agent, `cell run`.
        '';
        example = "claude";
      };
      command = mkOption {
        type = types.nullOr (types.nonEmptyListOf types.str);
        default = null;
        description = ''
          Program and fixed arguments. `null`: the kind's program, found on the host's
          `PATH` and bound read-only.
        '';
        example = literalExpression "[ (lib.getExe pkgs.claude-code) ]";
      };
      args = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        description = ''
          Arguments that replace the kind's default "no prompts" arguments. `null` keeps the
          defaults.
        '';
        example = [ "--model=sonnet" ];
      };
      networkPreset = mkOption {
        type = types.bool;
        default = true;
        description = "Add the kind's hosts (its API and login) to `network.allow`.";
      };
    };
  };

  inherit (config) agent;
in
{
  options.agent = mkOption {
    type = types.nullOr (types.submodule agentModule);
    default = null;
    description = "The coding agent this cell runs. `null`: a plain cell for `cell run`.";
    example = literalExpression ''{ kind = "claude"; }'';
  };

  config.assertions.agent = at: [
    {
      assertion = agent == null || agent.kind != "custom" || agent.command != null;
      message = "${at}.agent.command must be set when ${at}.agent.kind is \"custom\" (or pick a built-in kind: ${lib.concatStringsSep ", " agentKinds}).";
    }
  ];
}
