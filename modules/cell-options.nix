# The one cell option tree, shared by the NixOS module, the home-manager module and
# lib.mkCell, and everything derived from it: the JSON the Rust side reads (schema
# version 1, rust/docs/cell-config.schema.json), the assertions, the launcher argv of the
# `cell-<name>` wrappers and the build-time validation of the rendered file.
{ lib, pkgs }:
let
  inherit (lib)
    literalExpression
    mkOption
    optional
    optionalAttrs
    types
    ;

  schemaVersion = 1;

  chromium = import ./chromium.nix { inherit lib pkgs; };

  # The built-in agent kinds; each is a `cell <kind>` subcommand.
  agentKinds = [
    "claude"
    "codex"
    "gemini"
    "opencode"
  ];

  cellNameRegex = "[a-z0-9][a-z0-9_-]{0,47}";
  envNameRegex = "[A-Za-z_][A-Za-z0-9_]*";

  # Paths are plain strings (never Nix path values: those would be copied into the store,
  # which is wrong for secrets and home directories); their shape is checked by assertions
  # that name the option and say how to fix it.
  pathStr = types.str;

  # Whether `p` is absolute and normalised (no `.`, `..` or NUL), as the Rust side demands.
  isAbsolute =
    p:
    lib.hasPrefix "/" p
    && !(builtins.elem "." (lib.splitString "/" p))
    && !(builtins.elem ".." (lib.splitString "/" p));

  # Whether `p` is relative and stays inside its base directory.
  isRelativeInside =
    p:
    let
      parts = lib.splitString "/" (lib.removeSuffix "/" p);
    in
    p != "" && !(lib.hasPrefix "/" p) && builtins.all (c: c != "" && c != "." && c != "..") parts;

  bindModule = {
    options = {
      src = mkOption {
        type = pathStr;
        description = "Absolute host path.";
        example = "/home/alice/.gitconfig";
      };
      dst = mkOption {
        type = types.nullOr pathStr;
        default = null;
        description = "Absolute path inside the cell. `null` means the same as `src`.";
        example = "/home/cell/.gitconfig";
      };
      mode = mkOption {
        type = types.enum [
          "ro"
          "rw"
        ];
        default = "ro";
        description = "`ro` (read-only) or `rw` (read-write).";
      };
      optional = mkOption {
        type = types.bool;
        default = false;
        description = "Skip the bind silently when `src` does not exist (otherwise the launch fails).";
      };
    };
  };

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

  cellModule =
    { name, ... }:
    {
      imports = [ chromium.chromiumModule ];

      options = {
        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalExpression "<name>";
          readOnly = true;
          description = "The cell's name: its attribute name (lowercase letters, digits, `-`, `_`).";
        };

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

        hostSystem = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Bind the host's system directories read-only (`/usr`, `/bin`, `/lib*`,
            certificates, `/nix/store`, `/run/current-system`, ...). Turn off when `binds`
            names everything the cell needs.
          '';
        };

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

        runAs = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = ''
            The host account `cell` becomes, for good, when root launches this cell: a cell
            started by root is never root on the host, and the worktree, the cell home and
            the files the agent writes belong to this account. `null`: `programs.cell.runAs`
            (on NixOS the system account `cell`, which the module creates), else the account
            named `cell`. Never `root`. Without root the cell runs as the user who starts it.
          '';
          example = "agent";
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

        binds = mkOption {
          type = types.listOf (types.submodule bindModule);
          default = [ ];
          description = "Extra host paths made visible inside the cell.";
          example = literalExpression ''
            [
              { src = "/home/alice/.gitconfig"; }
              { src = "/srv/data"; dst = "/data"; mode = "rw"; }
            ]
          '';
        };

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

        network = {
          mode = mkOption {
            type = types.nullOr (
              types.enum [
                "none"
                "proxy"
              ]
            );
            default = null;
            description = ''
              `none`: loopback only. `proxy`: the egress proxy is the only way out, to what
              `allow` names. `null`: `proxy` for agents and whenever `allow` or `hosts` is
              set, else `none`.
            '';
            example = "proxy";
          };
          allow = mkOption {
            type = types.listOf types.str;
            default = [ ];
            description = ''
              Destinations the proxy lets through: `host`, `*.domain` (strict subdomains) or
              an IP literal, each with an optional `:port` (default 80 and 443). Empty denies
              everything. `cell` itself rejects `*` and `*.com`-style entries.
            '';
            example = [
              "github.com"
              "*.githubusercontent.com"
              "registry.npmjs.org:443"
            ];
          };
          hosts = mkOption {
            type = types.attrsOf types.str;
            default = { };
            description = "Static name pins for the proxy (name → IP address), for reaching a named local service.";
            example = {
              "db.test" = "127.0.0.1";
            };
          };
          socks = mkOption {
            type = types.bool;
            default = true;
            description = "Also offer SOCKS5 on 127.0.0.1:1080 inside the cell (for ssh and git over ssh).";
          };
        };

        security = {
          defaultProtectedPaths = mkOption {
            type = types.bool;
            default = true;
            description = "Keep the built-in protected paths (`.git/hooks/`, `.git/config`, `.envrc`, ...) read-only.";
          };
          protectedPaths = mkOption {
            type = types.listOf types.str;
            default = [ ];
            description = ''
              More paths, relative to the worktree, read-only inside the cell (including ones
              that do not exist yet). A trailing `/` marks a directory.
            '';
            example = [
              "scripts/deploy.sh"
              "ci/"
            ];
          };
          unsafeAllowAllSyscalls = mkOption {
            type = types.bool;
            default = false;
            description = ''
              Run without the seccomp filter. Only for debugging a program the filter breaks:
              it re-opens ptrace, `io_uring`, bpf, terminal injection and nested namespaces.
            '';
          };
        };

        agent = mkOption {
          type = types.nullOr (types.submodule agentModule);
          default = null;
          description = "The coding agent this cell runs. `null`: a plain cell for `cell run`.";
          example = literalExpression ''{ kind = "claude"; }'';
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

        state = mkOption {
          type = types.nullOr (types.submodule stateModule);
          default = null;
          description = "Persistent agent state kept in a host directory and linked into the cell's home.";
        };

        patches = mkOption {
          type = types.nullOr pathStr;
          default = null;
          description = "Host directory bound read-write at `/patches`, the rendezvous for `git format-patch` output.";
          example = "/home/alice/patches";
        };

        fragments = mkOption {
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

        mcp.servers = mkOption {
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

        limits = {
          tasks = mkOption {
            type = types.nullOr (types.either types.ints.positive (types.enum [ "max" ]));
            default = null;
            description = ''
              Most tasks (processes and threads) in the cell at once, or `"max"` for no limit.
              `null` keeps cell's default (4096).
            '';
            example = 512;
          };
          memory = mkOption {
            type = types.nullOr (types.strMatching "[0-9]+[KMGT]?|[0-9]+%|max");
            default = null;
            description = ''
              Most memory of the cell: `"4G"` (K, M, G, T are powers of 1024), a share of the
              host's RAM (`"50%"`), or `"max"`. `null` keeps cell's default (`"75%"`).
            '';
            example = "4G";
          };
          cpuWeight = mkOption {
            type = types.nullOr (types.ints.between 1 10000);
            default = null;
            description = ''
              The cell's share of CPU time against its sibling groups when the CPU is busy
              (cgroup v2 `cpu.weight`, 100 is an ordinary group). `null` keeps cell's default
              (100).
            '';
            example = 50;
          };
          cpuQuota = mkOption {
            type = types.nullOr (types.strMatching "[0-9]+%");
            default = null;
            description = "A hard cap on the cell's CPU time (`200%` is two CPUs).";
            example = "200%";
          };
          unsafeNoLimits = mkOption {
            type = types.bool;
            default = false;
            description = ''
              No limits at all (no cgroup, no rlimits): a fork bomb or a memory hog in the cell
              can take the host down. For measuring and debugging only.
            '';
          };
        };

        nixDaemon = {
          enable = mkOption {
            type = types.bool;
            default = false;
            description = ''
              Let the cell use the host's Nix daemon: its socket directory is bound read-write
              and `NIX_REMOTE=daemon` is set.

              **This is a way around the egress proxy.** The daemon builds and fetches on the
              cell's behalf with the host's network, not the cell's: fixed-output derivations
              and substitutions reach any host, whatever `network.allow` says, and whatever the
              cell builds lands in the host's store. Enable it only for cells whose code you
              would let build on the host.
            '';
          };
          socket = mkOption {
            type = pathStr;
            default = "/nix/var/nix/daemon-socket";
            description = "Host directory holding the daemon's socket; bound at `/nix/var/nix/daemon-socket` inside.";
          };
        };

        wrapper = mkOption {
          type = types.bool;
          default = true;
          description = "Install a `cell-<name>` command that launches this cell.";
        };
      };
    };

  cellType = types.submodule cellModule;

  # ---- rendering ----------------------------------------------------------------------

  # Drops nulls, empty lists and empty attrsets, which the Rust side treats as absent.
  compact = lib.filterAttrs (_: v: v != null && v != [ ] && v != { });

  renderBind =
    b:
    compact {
      inherit (b) src dst mode;
      inherit (b) optional;
    };

  renderMcpServer =
    s:
    compact {
      inherit (s)
        command
        args
        env
        url
        headers
        transport
        ;
    };

  nixDaemonBind = cell: {
    src = cell.nixDaemon.socket;
    dst =
      if cell.nixDaemon.socket == "/nix/var/nix/daemon-socket" then
        null
      else
        "/nix/var/nix/daemon-socket";
    mode = "rw";
    optional = false;
  };

  renderCell =
    cell:
    compact {
      inherit (cell)
        command
        hostSystem
        passEnv
        path
        envFromFile
        patches
        ;
      worktree = compact { inherit (cell.worktree) path allowBroad; };
      inherit (cell) runAs;
      home = compact { inherit (cell.home) path; };
      binds = map renderBind (cell.binds ++ optional cell.nixDaemon.enable (nixDaemonBind cell));
      env = cell.env // optionalAttrs cell.nixDaemon.enable { NIX_REMOTE = "daemon"; };
      network = compact {
        inherit (cell.network)
          mode
          allow
          hosts
          socks
          ;
      };
      security = compact {
        inherit (cell.security) defaultProtectedPaths protectedPaths unsafeAllowAllSyscalls;
      };
      limits =
        compact {
          inherit (cell.limits)
            tasks
            memory
            cpuWeight
            cpuQuota
            ;
        }
        // optionalAttrs cell.limits.unsafeNoLimits { unsafeNoLimits = true; };
      agent =
        if cell.agent == null then
          null
        else
          compact {
            inherit (cell.agent)
              kind
              command
              args
              networkPreset
              ;
          };
      state = if cell.state == null then null else { inherit (cell.state) dir links; };
      fragments =
        map
          (f: {
            inherit (f)
              name
              order
              command
              onFailure
              timeoutSeconds
              ;
          })
          (
            lib.sort (a: b: a.order < b.order || (a.order == b.order && a.name < b.name)) (
              builtins.attrValues cell.fragments
            )
          );
      mcp = compact { servers = lib.mapAttrs (_: renderMcpServer) cell.mcp.servers; };
      # `cell login` runs this Chromium inside the cell on the profile the wrapper and the
      # MCP server use.
      browser = if cell.chromium.enable then { command = cell.chromium.command; } else null;
    };

  # The whole document: { cells; defaultCell; } of evaluated options → attrset for toJSON.
  # `runAs` is the account of the cells that name none (`null`: leave it to `cell`).
  render =
    {
      cells,
      defaultCell,
      runAs ? null,
    }:
    {
      inherit schemaVersion;
      cells = lib.mapAttrs (
        _: cell: renderCell (cell // { runAs = if cell.runAs == null then runAs else cell.runAs; })
      ) cells;
    }
    // optionalAttrs (defaultCell != null) { inherit defaultCell; };

  # ---- assertions ---------------------------------------------------------------------

  # An account name as `useradd` takes it, never root: a cell started by root must not be
  # root on the host.
  runAsAssertion = opt: account: {
    assertion =
      account == null
      || (account != "root" && builtins.match "[a-z_][a-z0-9_.-]{0,30}[$]?" account != null);
    message = "${opt} must name an unprivileged account (a login name such as \"cell\"), never root; got \"${toString account}\".";
  };

  # `prefix` is where the cells live in the caller's option tree, e.g.
  # "programs.cell.cells"; every message names the option to change.
  cellAssertions =
    prefix: name: cell:
    let
      at = "${prefix}.${name}";
      absolute = opt: p: {
        assertion = isAbsolute p;
        message = "${at}.${opt} must be an absolute path without `.` or `..` components (starting with `/`); got \"${p}\".";
      };
      relative = opt: p: {
        assertion = isRelativeInside p;
        message = "${at}.${opt} must be a path relative to its base directory without `/` at the start, `.` or `..`; got \"${p}\".";
      };
      envName = opt: k: {
        assertion = builtins.match envNameRegex k != null;
        message = "${at}.${opt}: \"${k}\" is not a valid environment variable name (letters, digits and `_`, not starting with a digit).";
      };
      opt = p: v: if v == null then [ ] else [ (absolute p v) ];
      indexed = f: list: lib.imap0 f list;
    in
    [
      {
        assertion = builtins.match cellNameRegex name != null;
        message = "${at}: the cell name \"${name}\" must be lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 48 characters; rename the attribute.";
      }
      (runAsAssertion "${at}.runAs" cell.runAs)
      {
        assertion = cell.agent == null || cell.agent.kind != "custom" || cell.agent.command != null;
        message = "${at}.agent.command must be set when ${at}.agent.kind is \"custom\" (or pick a built-in kind: ${lib.concatStringsSep ", " agentKinds}).";
      }
      {
        assertion = cell.network.mode != "none" || (cell.network.allow == [ ] && cell.network.hosts == { });
        message = "${at}.network.mode is \"none\", which lets nothing out, but ${at}.network.allow or ${at}.network.hosts is set; set ${at}.network.mode = \"proxy\" or remove them.";
      }
      {
        assertion = cell.command == null || builtins.head cell.command != "";
        message = "${at}.command must start with a program name; got an empty string.";
      }
    ]
    ++ opt "worktree.path" cell.worktree.path
    ++ opt "home.path" cell.home.path
    ++ opt "patches" cell.patches
    ++ opt "state.dir" (if cell.state == null then null else cell.state.dir)
    ++ lib.optionals (cell.state != null) (
      indexed (i: relative "state.links.[${toString i}]") cell.state.links
    )
    ++ lib.optionals cell.nixDaemon.enable [ (absolute "nixDaemon.socket" cell.nixDaemon.socket) ]
    ++ lib.concatLists (
      indexed (
        i: b:
        [ (absolute "binds.[${toString i}].src" b.src) ]
        ++ opt "binds.[${toString i}].dst" b.dst
        ++ [
          {
            assertion =
              let
                d = lib.removeSuffix "/" (if b.dst == null then b.src else b.dst);
              in
              !(builtins.elem d [
                ""
                "/proc"
                "/dev"
                "/run/cell"
              ])
              && !(lib.hasPrefix "/proc/" d || lib.hasPrefix "/dev/" d || lib.hasPrefix "/run/cell/" d);
            message = "${at}.binds.[${toString i}] would replace \"${
              if b.dst == null then b.src else b.dst
            }\", which cell manages itself (`/`, `/proc`, `/dev`, `/run/cell`); bind it somewhere else with `dst`.";
          }
        ]
      ) cell.binds
    )
    ++ lib.optionals (cell.path != null) (indexed (i: absolute "path.[${toString i}]") cell.path)
    ++ lib.optionals (cell.path != null) (
      indexed (i: p: {
        assertion = !(lib.hasInfix ":" p);
        message = "${at}.path.[${toString i}] must not contain `:`; list each directory separately.";
      }) cell.path
    )
    ++ lib.mapAttrsToList (k: absolute "envFromFile.${k}") cell.envFromFile
    ++ map (envName "envFromFile") (builtins.attrNames cell.envFromFile)
    ++ map (envName "env") (builtins.attrNames cell.env)
    ++ indexed (i: relative "security.protectedPaths.[${toString i}]") cell.security.protectedPaths
    ++ lib.concatLists (
      lib.mapAttrsToList (fname: f: [
        {
          assertion = builtins.match "[A-Za-z0-9_-]+" f.name != null;
          message = "${at}.fragments.${fname}.name must be letters, digits, `-` and `_`; got \"${f.name}\".";
        }
        {
          assertion = f.command != [ ] && lib.hasPrefix "/" (builtins.head f.command);
          message = "${at}.fragments.${fname}.command must start with an absolute host path (or set ${at}.fragments.${fname}.script).";
        }
      ]) cell.fragments
    )
    ++ lib.concatLists (
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
      ) cell.mcp.servers
    )
    ++ chromium.assertions at cell;

  assertions =
    {
      prefix,
      cells,
      defaultCell,
      defaultCellOption,
    }:
    lib.concatLists (lib.mapAttrsToList (cellAssertions prefix) cells)
    ++ [
      {
        assertion = defaultCell == null || cells ? ${defaultCell};
        message = "${defaultCellOption} is \"${toString defaultCell}\", but no cell has that name; declare ${prefix}.${toString defaultCell} or pick one of: ${
          if cells == { } then "(none declared)" else lib.concatStringsSep ", " (builtins.attrNames cells)
        }.";
      }
    ];

  # ---- launchers ----------------------------------------------------------------------

  # The argv of the `cell-<name>` wrapper, before the user's own arguments: for a cell that
  # declares `limits`, a transient systemd user scope with its cgroup delegated to the
  # launcher (`Delegate=yes`), in which `cell` makes the cell's own group and writes the
  # limits of the rendered config (the same numbers `cell run` applies anywhere else); then
  # `cell` with the config file named explicitly (so $CELL_CONFIG or a user config cannot
  # swap it).
  launchArgv =
    {
      cell,
      configFile,
      name,
      settings,
      systemdRun,
      # `cell <kind>` for a built-in agent, else `cell run`.
      subcommand ?
        if settings.agent != null && builtins.elem settings.agent.kind agentKinds then
          settings.agent.kind
        else
          "run",
    }:
    let
      declared = lib.filterAttrs (n: v: v != null && n != "unsafeNoLimits") settings.limits != { };
      scope = lib.optionals declared [
        systemdRun
        "--user"
        "--scope"
        "--quiet"
        "--collect"
        "-p"
        "Delegate=yes"
        "--"
      ];
    in
    scope
    ++ [
      (lib.getExe cell)
      "--config"
      "${configFile}"
      subcommand
      "--cell"
      name
    ];

  # A `cell-<name>` command: the argv above, then the user's arguments.
  wrapper =
    args:
    pkgs.writeShellScriptBin "cell-${args.name}" ''
      exec ${lib.escapeShellArgs (launchArgv args)} "$@"
    '';

  # `cell-<name>-chromium`, for a cell with `chromium.enable`: the same launcher argv,
  # `cell … run --cell <name> -- <the in-cell Chromium launcher> "$@"`.
  chromiumWrapper = args: chromium.wrapper (args // { inherit launchArgv; });

  # ---- build-time validation (the sops-nix manifest pattern) --------------------------

  # The rendered file, as a store path that exists only when `cell` accepts it. Config
  # errors (exit 2, "<file>: cells.<name>.<field>: ...") fail the build; a plan that fails
  # for reasons of the build sandbox (a bind source that exists only on the real host, no
  # user namespaces) does not, since only the host can judge those.
  configFile =
    {
      cell,
      document,
      validate ? true,
      name ? "cell-config.json",
    }:
    let
      json = pkgs.writeText name (builtins.toJSON document);
    in
    if !validate then
      json
    else
      pkgs.runCommand name
        {
          inherit json;
          nativeBuildInputs = [ cell ];
        }
        ''
          export HOME=$TMPDIR
          ${lib.getExe cell} --config "$json" check
          cp "$json" "$out"
        '';
in
{
  inherit
    agentKinds
    assertions
    runAsAssertion
    cellType
    chromiumWrapper
    configFile
    launchArgv
    render
    renderCell
    schemaVersion
    wrapper
    ;
}
