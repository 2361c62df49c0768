# `mcp.servers`: MCP servers declared once, merged by cell-mcp into each agent's own
# configuration inside the cell.
{ config, lib, ... }:
let
  inherit (lib) literalExpression mkOption types;

  mcpServerModule = {
    options = {
      command = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "A stdio server: the program to run (found on the agent's `PATH` unless absolute).";
        example = literalExpression "lib.getExe pkgs.mcp-server-fetch";
      };
      args = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Arguments of a stdio server.";
      };
      env = mkOption {
        type = types.attrsOf types.str;
        default = { };
        description = "Extra environment of a stdio server.";
      };
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "A remote server: its `http://` or `https://` endpoint.";
        example = "https://mcp.example.com/mcp";
      };
      headers = mkOption {
        type = types.attrsOf types.str;
        default = { };
        description = "Extra request headers of a remote server (e.g. `Authorization`).";
      };
      transport = mkOption {
        type = types.nullOr (
          types.enum [
            "http"
            "sse"
          ]
        );
        default = null;
        description = "Transport of a remote server: `http` (streamable HTTP, the default) or `sse`.";
      };
    };
  };
in
{
  options.mcp.servers = mkOption {
    type = types.attrsOf (types.submodule mcpServerModule);
    default = { };
    description = ''
      MCP servers, declared once and merged into each agent's own configuration: stdio
      (`command`, `args`, `env`) or remote (`url`, `headers`, `transport`).
    '';
    example = literalExpression ''
      {
        fetch = { command = lib.getExe pkgs.mcp-server-fetch; };
        docs = { url = "https://mcp.example.com/mcp"; headers.Authorization = "Bearer ..."; };
      }
    '';
  };

  config.assertions.mcp =
    at:
    lib.concatLists (
      lib.mapAttrsToList (
        sname: s:
        let
          sat = "${at}.mcp.servers.${sname}";
        in
        [
          {
            assertion = (s.command == null) != (s.url == null);
            message = "${sat}: set exactly one of ${sat}.command (a stdio server) or ${sat}.url (a remote server).";
          }
          {
            assertion = s.command == null || (s.headers == { } && s.transport == null);
            message = "${sat}.headers and ${sat}.transport are only for remote servers (with url); remove them from this stdio server.";
          }
          {
            assertion = s.url == null || (s.args == [ ] && s.env == { });
            message = "${sat}.args and ${sat}.env are only for stdio servers (with command); remove them from this remote server.";
          }
          {
            assertion = s.url == null || builtins.match "https?://[^/[:space:]][^[:space:]]*" s.url != null;
            message = "${sat}.url must be an http:// or https:// URL; got \"${toString s.url}\".";
          }
        ]
      ) config.mcp.servers
    );
}
