# Evaluated cells → the document `cell` reads, as a curated attrset for `builtins.toJSON`.
# One function per type of rust/cell/src/config.rs, named after it and building exactly
# its fields (rust/docs/cell-config.schema.json is generated from those types, and
# checks/eval/schema.nix checks this file against it).
#
# What the Rust side treats as absent is left out: nulls, empty lists and empty attrsets
# (its `Option::is_none`, `Vec::is_empty` and `BTreeMap::is_empty`). Booleans are always
# written, so the file says what each cell gets whatever `cell`'s defaults are.
{ lib }:
let
  inherit (lib) optional optionalAttrs;

  # The only schema version the Rust side understands (`SCHEMA_VERSION`).
  schemaVersion = 1;

  # Drops nulls, empty lists and empty attrsets.
  compact = lib.filterAttrs (_: v: v != null && v != [ ] && v != { });

  # `WorktreeConfig`: `path` (default: the current directory), `allowBroad`.
  worktreeConfig = w: compact { inherit (w) path allowBroad; };

  # `HomeConfig`: `path` (default: $XDG_DATA_HOME/cell/<name>/home).
  homeConfig = h: compact { inherit (h) path; };

  # `BindConfig`: `src`, `dst` (default: `src`), `mode`, `optional`.
  bindConfig =
    b:
    compact {
      inherit (b)
        src
        dst
        mode
        optional
        ;
    };

  # The bind `nixDaemon.enable` adds: the socket directory, read-write, at the daemon's
  # usual place.
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

  # `NetworkConfig`: `mode` (default: chosen by `cell`), `allow`, `hosts`, `socks`.
  networkConfig =
    n:
    compact {
      inherit (n)
        mode
        allow
        hosts
        socks
        ;
    };

  # `PortsConfig`: `publish`, each entry a string (a bare port is a number in Nix), and
  # `host` (host services).
  portsConfig =
    p:
    compact {
      publish = map toString p.publish;
      inherit (p) host;
    };

  # `SecurityConfig`: `defaultProtectedPaths`, `protectedPaths`, `unsafeAllowAllSyscalls`.
  securityConfig =
    s:
    compact {
      inherit (s) defaultProtectedPaths protectedPaths unsafeAllowAllSyscalls;
    };

  # `LimitsConfig`: `tasks`, `memory`, `cpuWeight`, `cpuQuota` (each absent: `cell`'s
  # default), and `unsafeNoLimits` only when set (the Rust side skips it when false).
  limitsConfig =
    l:
    compact {
      inherit (l)
        tasks
        memory
        cpuWeight
        cpuQuota
        ;
    }
    // optionalAttrs l.unsafeNoLimits { unsafeNoLimits = true; };

  # `AgentConfig`: `kind`, `command`, `args` (each absent: the kind's), `networkPreset`.
  agentConfig =
    a:
    if a == null then
      null
    else
      compact {
        inherit (a)
          kind
          command
          args
          networkPreset
          ;
      };

  # `StateConfig`: `dir`, `links` (always written).
  stateConfig = s: if s == null then null else { inherit (s) dir links; };

  # `FragmentConfig`s: every field, as a list sorted by order, then name (the order
  # `cell-init` runs them in).
  fragmentConfigs =
    fragments:
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
          builtins.attrValues fragments
        )
      );

  # `McpConfig`: `servers`, each an `McpServerSchema`: `command`, `args`, `env` (stdio) or
  # `url`, `headers`, `transport` (remote).
  mcpServer =
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
  mcpConfig = m: compact { servers = lib.mapAttrs (_: mcpServer) m.servers; };

  # `BrowserConfig`: `command`, what `cell login` runs inside the cell on the profile the
  # `cell-<name>-chromium` launcher and the MCP server use.
  browserConfig = c: if c.enable then { inherit (c) command; } else null;

  # `ProjectConfig`: only the kinds a project may add (an empty attrset is dropped).
  projectConfig =
    p:
    compact {
      network = if p.network then true else null;
      env = if p.env then true else null;
      bindsUnder = if p.bindsUnder == [ ] then null else p.bindsUnder;
    };

  # `SidecarConfig`: `command`, `env`, `envFromFile`, `port`, `cellPort` (absent: `port`),
  # `readyFd`, `via` (absent: it dials out directly), `cellFiles` (inside path -> host file).
  sidecarConfig =
    s:
    compact {
      inherit (s)
        command
        env
        envFromFile
        port
        cellPort
        readyFd
        via
        cellFiles
        ;
    };

  # `CellConfig`: one cell. `nixDaemon` is Nix-only: a bind and `NIX_REMOTE`.
  cellConfig =
    cell:
    compact {
      inherit (cell)
        command
        hostSystem
        runAs
        passEnv
        path
        envFromFile
        patches
        ;
      worktree = worktreeConfig cell.worktree;
      home = homeConfig cell.home;
      binds = map bindConfig (cell.binds ++ optional cell.nixDaemon.enable (nixDaemonBind cell));
      env = cell.env // optionalAttrs cell.nixDaemon.enable { NIX_REMOTE = "daemon"; };
      network = networkConfig cell.network;
      ports = portsConfig cell.ports;
      security = securityConfig cell.security;
      limits = limitsConfig cell.limits;
      agent = agentConfig cell.agent;
      state = stateConfig cell.state;
      fragments = fragmentConfigs cell.fragments;
      mcp = mcpConfig cell.mcp;
      browser = browserConfig cell.chromium;
      project = projectConfig cell.project;
      sidecars = lib.mapAttrs (_: sidecarConfig) cell.sidecars;
    };

  # `ConfigFile`: the whole document, from `{ cells; defaultCell; }` of evaluated options.
  # `runAs` is the account of the cells that name none (`null`: leave it to `cell`).
  configFile =
    {
      cells,
      defaultCell,
      runAs ? null,
    }:
    {
      inherit schemaVersion;
      cells = lib.mapAttrs (
        _: cell: cellConfig (cell // { runAs = if cell.runAs == null then runAs else cell.runAs; })
      ) cells;
    }
    // optionalAttrs (defaultCell != null) { inherit defaultCell; };
in
{
  inherit schemaVersion;
  render = configFile;
  renderCell = cellConfig;
}
