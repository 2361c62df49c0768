# `sidecars` and `ports.host`: what runs, or already listens, on the host beside the cell,
# reached from inside only at 127.0.0.1:PORT (a unix socket the launcher forwards to the
# host port, bridged by cell-init; never a route).
{ config, lib, ... }:
let
  inherit (lib) literalExpression mkOption types;
  inherit (import ./lib.nix { inherit lib; })
    absolute
    envName
    pathStr
    ;

  port = types.ints.between 1 65535;

  # Where no sidecar file may go inside (as the Rust side checks): what cell makes itself,
  # and the system's programs and libraries.
  reservedPlaces = [
    "/proc"
    "/dev"
    "/run/cell"
  ];
  systemPlaces = [
    "/usr"
    "/nix"
    "/bin"
    "/sbin"
    "/lib"
    "/lib32"
    "/lib64"
    "/libx32"
  ];

  sidecarModule = {
    options = {
      command = mkOption {
        type = types.listOf types.str;
        description = ''
          The host program (an absolute path, or a name found on `PATH` outside the places
          the cell can write) and its arguments. It runs on the host as the user the cell
          runs as, outside the cell: it is trusted code you declare.
        '';
        example = literalExpression ''[ "''${pkgs.postgresql}/bin/postgres" "-D" "/var/lib/cell-db" "-p" "5433" ]'';
      };
      env = mkOption {
        type = types.attrsOf types.str;
        default = { };
        description = "Variables set for the sidecar (not for the cell).";
        example = {
          LOG_LEVEL = "info";
        };
      };
      envFromFile = mkOption {
        type = types.attrsOf pathStr;
        default = { };
        description = ''
          Variables of the sidecar read at launch from host files (secrets only it holds:
          they never reach the cell, the Nix store or a command line).
        '';
        example = literalExpression "{ GITHUB_TOKEN = config.sops.secrets.github.path; }";
      };
      port = mkOption {
        type = port;
        description = "The TCP port it listens on at the host's 127.0.0.1; the cell starts once it accepts.";
        example = 5433;
      };
      cellPort = mkOption {
        type = types.nullOr port;
        default = null;
        description = "The port it is reached at inside the cell, on 127.0.0.1. `null`: `port`.";
        example = 5432;
      };
      readyFd = mkOption {
        type = types.bool;
        default = false;
        description = ''
          It follows the `--ready-fd` protocol (descriptor 3 is a pipe; it writes `ready`
          once it accepts) instead of the launcher waiting for `port` to accept.
        '';
      };
      cellFiles = mkOption {
        type = types.attrsOf pathStr;
        default = { };
        description = ''
          Read-only files it contributes to the cell: the path inside the cell, then the host
          file bound there (it may be written by the sidecar before it reports ready). The host
          file must lie outside every place the cell can write; inside, the path may not be one
          cell makes itself (`/proc`, `/dev`, `/run/cell`, its generated `/etc` files) nor
          under the system's programs (`/usr`, `/nix`, `/bin`, `/sbin`, `/lib*`).
        '';
        example = {
          "/etc/ssl/sidecar-ca.pem" = "/var/lib/cell-mitm/ca.pem";
        };
      };
      via = mkOption {
        type = types.nullOr (types.enum [ "egress" ]);
        default = null;
        description = ''
          The sidecar it dials out through: `"egress"` hands it the egress proxy's unix
          socket in `$CELL_VIA_SOCKET`, so what it sends out passes the cell's allowlist.
        '';
      };
    };
  };
in
{
  options = {
    sidecars = mkOption {
      type = types.attrsOf (types.submodule sidecarModule);
      default = { };
      description = ''
        Host-side processes started before the cell and stopped after it, by name
        (lowercase letters, digits and `-`): a database, a host-side MCP server holding its
        own credentials. Each log is in the cell's state directory.
      '';
      example = literalExpression ''
        {
          mcp-github = {
            command = [ "''${pkgs.github-mcp-server}/bin/github-mcp-server" "http" "--port" "8931" ];
            envFromFile.GITHUB_TOKEN = config.sops.secrets.github.path;
            port = 8931;
          };
        }
      '';
    };
    ports.host = mkOption {
      type = types.listOf port;
      default = [ ];
      description = ''
        Host services: a service already listening on the host's 127.0.0.1:PORT is
        reachable inside the cell at 127.0.0.1:PORT, and nothing else of the host's
        loopback (`cell run --host-port PORT` adds one for a run).
      '';
      example = [
        5432
        11434
      ];
    };
  };

  config.assertions.sidecars =
    at:
    let
      inCell =
        lib.mapAttrsToList (name: s: {
          inherit name;
          port = if s.cellPort == null then s.port else s.cellPort;
        }) config.sidecars
        ++ map (p: {
          name = "ports.host";
          port = p;
        }) config.ports.host;
      ports = map (p: p.port) inCell;
      where = p: if p.name == "ports.host" then "ports.host" else "sidecars.${p.name}";
    in
    lib.concatLists (
      lib.mapAttrsToList (
        name: s:
        [
          {
            assertion =
              builtins.match "[a-z][a-z0-9-]{0,31}" name != null
              && name != "egress"
              && !(lib.hasPrefix "host-" name);
            message = "${at}.sidecars.${name}: the name must be lowercase letters, digits and `-`, starting with a letter (not `egress` or `host-*`).";
          }
          {
            assertion = s.command != [ ] && builtins.head s.command != "";
            message = "${at}.sidecars.${name}.command is empty; give the host program and its arguments.";
          }
        ]
        ++ lib.mapAttrsToList (k: absolute at "sidecars.${name}.envFromFile.${k}") s.envFromFile
        ++ lib.concatLists (
          lib.mapAttrsToList (dst: src: [
            (absolute at "sidecars.${name}.cellFiles.\"${dst}\"" dst)
            (absolute at "sidecars.${name}.cellFiles.\"${dst}\"" src)
            {
              assertion =
                !(builtins.any (p: dst == p || lib.hasPrefix "${p}/" dst) systemPlaces)
                && dst != "/"
                && !(builtins.any (p: dst == p || lib.hasPrefix "${p}/" dst) reservedPlaces);
              message = "${at}.sidecars.${name}.cellFiles.\"${dst}\": cell makes that place itself, or it holds the system's programs; put the file elsewhere, e.g. under /etc.";
            }
          ]) s.cellFiles
        )
        ++ map (envName at "sidecars.${name}.env") (builtins.attrNames s.env)
        ++ map (envName at "sidecars.${name}.envFromFile") (builtins.attrNames s.envFromFile)
      ) config.sidecars
    )
    ++ map (p: {
      assertion =
        !(builtins.elem p.port [
          3128
          1080
        ]);
      message = "${at}.${where p}: port ${toString p.port} inside the cell is the egress proxy's; pick another.";
    }) inCell
    ++ lib.imap0 (
      i: p:
      let
        first = lib.findFirst (q: q.port == p.port) p inCell;
      in
      {
        assertion = !(builtins.elem p.port (lib.take i ports));
        message = "${at}.${where p}: port ${toString p.port} inside the cell is already taken by ${at}.${where first}; give each its own in-cell port (set cellPort).";
      }
    ) inCell;
}
