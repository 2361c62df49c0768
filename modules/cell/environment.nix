# The environment inside a cell: `env`, `passEnv`, `path` (`PATH`) and `envFromFile`
# (secrets read at launch).
{ config, lib, ... }:
let
  inherit (lib) literalExpression mkOption types;
  inherit (import ./lib.nix { inherit lib; })
    absolute
    envName
    envNameRegex
    pathStr
    ;
in
{
  options = {
    env = mkOption {
      type = types.attrsOf types.str;
      default = { };
      description = "Environment variables set inside the cell (the host environment is never passed wholesale).";
      example = {
        EDITOR = "vi";
      };
    };

    passEnv = mkOption {
      type = types.listOf (types.strMatching envNameRegex);
      default = [ ];
      description = ''
        Host environment variables passed through when set. `TERM`, `LANG`, `LC_*`,
        `COLORTERM` and `TZ` always are.
      '';
      example = [ "GITHUB_TOKEN" ];
    };

    path = mkOption {
      type = types.nullOr (types.listOf pathStr);
      default = null;
      description = "`PATH` inside the cell, as absolute directories. `null`: the usual system directories.";
      example = [
        "/run/current-system/sw/bin"
        "/usr/bin"
      ];
    };

    envFromFile = mkOption {
      type = types.attrsOf pathStr;
      default = { };
      description = ''
        Environment variables whose values are read at launch from host files (agenix or
        sops-nix secret paths, as strings). The values never reach the Nix store or the
        cell's home.
      '';
      example = literalExpression "{ ANTHROPIC_API_KEY = config.sops.secrets.anthropic.path; }";
    };
  };

  config.assertions.environment =
    at:
    lib.optionals (config.path != null) (
      lib.imap0 (i: absolute at "path.[${toString i}]") config.path
      ++ lib.imap0 (i: p: {
        assertion = !(lib.hasInfix ":" p);
        message = "${at}.path.[${toString i}] must not contain `:`; list each directory separately.";
      }) config.path
    )
    ++ lib.mapAttrsToList (k: absolute at "envFromFile.${k}") config.envFromFile
    ++ map (envName at "envFromFile") (builtins.attrNames config.envFromFile)
    ++ map (envName at "env") (builtins.attrNames config.env);
}
