# The NixOS module (the flake's nixosModules.default), evaluated with lib.evalModules
# against typed stand-ins of the NixOS options it sets (./nixos-options.nix) and the stub
# packages.
{
  lib,
  stub,
  cellPkg,
  cellExe,
  evalNixos,
  eval,
  enabled,
  failed,
  failsWith,
  renderedJson,
  wrapper,
  golden,
  example,
  ...
}:
let
  full = enabled example;
  cfgPath = full.programs.cell.configFile.outPath;
in
{
  testNixosFullGolden = {
    expr = renderedJson full;
    expected = golden "full";
  };

  testNixosMinimalGolden = {
    expr = renderedJson (enabled {
      cells.default = { };
    });
    expected = golden "minimal";
  };

  testNixosDocumentIsWhatTheFileHolds = {
    expr = renderedJson full == full.programs.cell.document;
    expected = true;
  };

  testNixosEtcAndPackages = {
    expr = {
      etc = builtins.attrNames full.environment.etc;
      source = full.environment.etc."cell/config.json".source == full.programs.cell.configFile;
      packages = map (p: p.name) full.environment.systemPackages;
      noAssertions = failed full;
    };
    expected = {
      etc = [ "cell/config.json" ];
      source = true;
      # `quiet` has wrapper = false.
      packages = [
        cellPkg.name
        "cell-claude"
        "cell-sandbox"
      ];
      noAssertions = [ ];
    };
  };

  testNixosRootLaunchedCellsGetASystemAccount = {
    expr = {
      user = full.users.users.cell;
      group = full.users.groups ? cell;
      rendered = lib.mapAttrs (_: c: c.runAs) (renderedJson full).cells;
    };
    expected = {
      user = {
        isSystemUser = true;
        group = "cell";
        home = "/var/lib/cell";
        createHome = true;
        description = "cell sandboxes started by root";
        uid = null;
      };
      group = true;
      rendered = {
        claude = "agent";
        quiet = "cell";
        sandbox = "cell";
      };
    };
  };

  testNixosNeverRunsCellsAsRoot = {
    expr = {
      perCell = failsWith { runAs = "root"; };
      global = failed (enabled {
        runAs = "root";
        cells.x = { };
      });
      none = failed (enabled {
        runAs = null;
        cells.x = { };
      });
      uid0 = failed (eval [
        {
          programs.cell = {
            enable = true;
            runAs = "toor";
            cells.x = { };
          };
          users.users.toor.uid = 0;
        }
      ]);
      noAccountMadeForOthers =
        (enabled {
          runAs = "agent";
          cells.x = { };
        }).users.users
          ? cell;
    };
    expected = {
      perCell = [
        "programs.cell.cells.bad.runAs must name an unprivileged account (a login name such as \"cell\"), never root; got \"root\"."
        "programs.cell.runAs (or a cell's runAs) names \"root\", which is root or has uid 0 or gid 0; a cell started by root must never be root on the host: name an unprivileged account such as the default \"cell\"."
      ];
      global = [
        "programs.cell.runAs must name an unprivileged account (a login name such as \"cell\"), never root; got \"root\"."
        "programs.cell.runAs (or a cell's runAs) names \"root\", which is root or has uid 0 or gid 0; a cell started by root must never be root on the host: name an unprivileged account such as the default \"cell\"."
      ];
      none = [
        "programs.cell.runAs is null, so a cell started by root would have no account to run as; set it (the default is \"cell\", a system account this module creates) or set every cell's runAs."
      ];
      uid0 = [
        "programs.cell.runAs (or a cell's runAs) names \"toor\", which is root or has uid 0 or gid 0; a cell started by root must never be root on the host: name an unprivileged account such as the default \"cell\"."
      ];
      noAccountMadeForOthers = false;
    };
  };

  testNixosDisabledSetsNothing = {
    expr =
      let
        c = eval [ { programs.cell.cells.x = { }; } ];
      in
      {
        inherit (c.environment) etc systemPackages;
        assertions = c.assertions;
      };
    expected = {
      etc = { };
      systemPackages = [ ];
      assertions = [ ];
    };
  };

  testNixosPackageDefaultsToTheFlakesAndCanBeOverridden = {
    expr = {
      default = full.programs.cell.package == cellPkg;
      overridden =
        (enabled {
          cells.x = { };
          package = stub.hello or stub.bubblewrap;
        }).programs.cell.package == stub.bubblewrap;
    };
    expected = {
      default = true;
      overridden = true;
    };
  };

  # An agent cell with limits: a transient user scope delegated to cell, then `cell claude`
  # (which makes the cell's own group there and writes the limits of the rendered config).
  testNixosWrapperOfAgentCellWithLimits = {
    expr = (wrapper full "cell-claude").text;
    expected = ''
      exec ${stub.systemd.outPath}/bin/systemd-run --user --scope --quiet --collect -p 'Delegate=yes' -- ${cellExe} --config ${cfgPath} claude --cell claude "$@"
    '';
  };

  # A custom agent (or no agent) runs through `cell run`; no limits, no scope.
  testNixosWrapperOfCustomCell = {
    expr = (wrapper full "cell-sandbox").text;
    expected = ''
      exec ${cellExe} --config ${cfgPath} run --cell sandbox "$@"
    '';
  };

  testNixosConfigIsValidatedByCellAtBuildTime = {
    expr =
      let
        f = full.programs.cell.configFile;
      in
      {
        inherit (f) name;
        runsCheck = lib.hasInfix "${cellExe} --config \"$json\" check" f.script;
        copies = lib.hasInfix ''cp "$json" "$out"'' f.script;
      };
    expected = {
      name = "cell-config.json";
      runsCheck = true;
      copies = true;
    };
  };

  testNixosValidationCanBeTurnedOff = {
    expr =
      let
        f =
          (enabled {
            cells.x = { };
            validateConfig = false;
          }).programs.cell.configFile;
      in
      {
        inherit (f) name;
        plain = f ? text && !(f ? script);
      };
    expected = {
      name = "cell-config.json";
      plain = true;
    };
  };

  testNixosFragmentScriptBecomesCommand = {
    expr =
      (renderedJson (enabled {
        cells.x.fragments.setup.script = "echo hi";
      })).cells.x.fragments;
    expected = [
      {
        name = "setup";
        order = 50;
        command = [ "${(stub.writeShellScript "cell-fragment-setup" "echo hi").outPath}" ];
        onFailure = "abort";
        timeoutSeconds = 60;
      }
    ];
  };

  testNixosNixDaemonWithOtherSocket = {
    expr =
      let
        c =
          (renderedJson (enabled {
            cells.x.nixDaemon = {
              enable = true;
              socket = "/run/nix";
            };
          })).cells.x;
      in
      {
        inherit (c) binds env;
      };
    expected = {
      binds = [
        {
          src = "/run/nix";
          dst = "/nix/var/nix/daemon-socket";
          mode = "rw";
          optional = false;
        }
      ];
      env.NIX_REMOTE = "daemon";
    };
  };

  testNixosNixDaemonDescriptionSaysItBypassesTheProxy = {
    expr =
      let
        opts = (evalNixos [ ]).options;
        d = (opts.programs.cell.cells.type.getSubOptions [ ]).nixDaemon.enable.description;
      in
      lib.hasInfix "way around the egress proxy" d && lib.hasInfix "host's network" d;
    expected = true;
  };

  testNixosAssertCustomAgentNeedsCommand = {
    expr = failsWith { agent.kind = "custom"; };
    expected = [
      "programs.cell.cells.bad.agent.command must be set when programs.cell.cells.bad.agent.kind is \"custom\" (or pick a built-in kind: claude, codex, gemini, opencode)."
    ];
  };

  testNixosAssertNetworkNoneWithAllow = {
    expr = failsWith {
      network = {
        mode = "none";
        allow = [ "github.com" ];
      };
    };
    expected = [
      "programs.cell.cells.bad.network.mode is \"none\", which lets nothing out, but programs.cell.cells.bad.network.allow or programs.cell.cells.bad.network.hosts is set; set programs.cell.cells.bad.network.mode = \"proxy\" or remove them."
    ];
  };

  testNixosAssertPublishedPorts = {
    expr = failsWith {
      ports.publish = [
        8000
        "8000:9000"
        "70000:80"
      ];
    };
    expected = [
      "programs.cell.cells.bad.ports.publish has \"70000:80\", whose ports are not 1-65535; give ports between 1 and 65535."
      "programs.cell.cells.bad.ports.publish publishes host port 8000 more than once; publish each host port once (HOSTPORT:CELLPORT picks another host port)."
    ];
  };

  testNixosAssertRelativePaths = {
    expr = failsWith {
      worktree.path = "src/project";
      home.path = "/var/lib/../etc";
      binds = [ { src = "data"; } ];
      envFromFile.TOKEN = "secrets/token";
      state = {
        dir = "/state";
        links = [ "/abs" ];
      };
      security.protectedPaths = [ "../escape" ];
    };
    expected = [
      "programs.cell.cells.bad.worktree.path must be an absolute path without `.` or `..` components (starting with `/`); got \"src/project\"."
      "programs.cell.cells.bad.home.path must be an absolute path without `.` or `..` components (starting with `/`); got \"/var/lib/../etc\"."
      "programs.cell.cells.bad.state.links.[0] must be a path relative to its base directory without `/` at the start, `.` or `..`; got \"/abs\"."
      "programs.cell.cells.bad.binds.[0].src must be an absolute path without `.` or `..` components (starting with `/`); got \"data\"."
      "programs.cell.cells.bad.envFromFile.TOKEN must be an absolute path without `.` or `..` components (starting with `/`); got \"secrets/token\"."
      "programs.cell.cells.bad.security.protectedPaths.[0] must be a path relative to its base directory without `/` at the start, `.` or `..`; got \"../escape\"."
    ];
  };

  testNixosAssertReservedBindDestination = {
    expr = failsWith {
      binds = [
        {
          src = "/tmp/x";
          dst = "/proc/self";
        }
      ];
    };
    expected = [
      "programs.cell.cells.bad.binds.[0] would replace \"/proc/self\", which cell manages itself (`/`, `/proc`, `/dev`, `/run/cell`); bind it somewhere else with `dst`."
    ];
  };

  testNixosAssertNames = {
    expr = failed (enabled {
      cells."Bad.Name".env."1X" = "y";
      defaultCell = "nope";
    });
    expected = [
      "programs.cell.cells.Bad.Name: the cell name \"Bad.Name\" must be lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 48 characters; rename the attribute."
      "programs.cell.cells.Bad.Name.env: \"1X\" is not a valid environment variable name (letters, digits and `_`, not starting with a digit)."
      "programs.cell.defaultCell is \"nope\", but no cell has that name; declare programs.cell.cells.nope or pick one of: Bad.Name."
    ];
  };

  testNixosAssertFragmentAndMcp = {
    expr = failsWith {
      fragments.setup.command = [ "setup.sh" ];
      mcp.servers = {
        both = {
          command = "x";
          url = "https://x.test/";
        };
        remote = {
          url = "ftp://x.test/";
          args = [ "--nope" ];
        };
        local = {
          command = "x";
          transport = "sse";
        };
      };
    };
    expected = [
      "programs.cell.cells.bad.fragments.setup.command must start with an absolute host path (or set programs.cell.cells.bad.fragments.setup.script)."
      "programs.cell.cells.bad.mcp.servers.both: set exactly one of programs.cell.cells.bad.mcp.servers.both.command (a stdio server) or programs.cell.cells.bad.mcp.servers.both.url (a remote server)."
      "programs.cell.cells.bad.mcp.servers.local.headers and programs.cell.cells.bad.mcp.servers.local.transport are only for remote servers (with url); remove them from this stdio server."
      "programs.cell.cells.bad.mcp.servers.remote.args and programs.cell.cells.bad.mcp.servers.remote.env are only for stdio servers (with command); remove them from this remote server."
      "programs.cell.cells.bad.mcp.servers.remote.url must be an http:// or https:// URL; got \"ftp://x.test/\"."
    ];
  };

  testNixosAssertSidecarsAndHostPorts = {
    expr = failsWith {
      sidecars = {
        egress = {
          command = [ "/bin/x" ];
          port = 9000;
        };
        db = {
          command = [ ];
          port = 9001;
          cellPort = 3128;
          envFromFile.PW = "secrets/pw";
          cellFiles."/usr/share/ca.pem" = "ca.pem";
        };
        api = {
          command = [ "api" ];
          port = 9002;
        };
      };
      ports.host = [ 9002 ];
    };
    expected = [
      "programs.cell.cells.bad.sidecars.db.command is empty; give the host program and its arguments."
      "programs.cell.cells.bad.sidecars.db.envFromFile.PW must be an absolute path without `.` or `..` components (starting with `/`); got \"secrets/pw\"."
      "programs.cell.cells.bad.sidecars.db.cellFiles.\"/usr/share/ca.pem\" must be an absolute path without `.` or `..` components (starting with `/`); got \"ca.pem\"."
      "programs.cell.cells.bad.sidecars.db.cellFiles.\"/usr/share/ca.pem\": cell makes that place itself, or it holds the system's programs; put the file elsewhere, e.g. under /etc."
      "programs.cell.cells.bad.sidecars.egress: the name must be lowercase letters, digits and `-`, starting with a letter (not `egress` or `host-*`)."
      "programs.cell.cells.bad.sidecars.db: port 3128 inside the cell is the egress proxy's; pick another."
      "programs.cell.cells.bad.ports.host: port 9002 inside the cell is already taken by programs.cell.cells.bad.sidecars.api; give each its own in-cell port (set cellPort)."
    ];
  };

  # Narrow types reject what no assertion needs to explain.
  testNixosTypesRejectBadValues = {
    expr =
      map
        (
          cell:
          (builtins.tryEval (builtins.deepSeq (enabled { cells.x = cell; }).programs.cell.cells.x true))
          .success
        )
        [
          { network.mode = "open"; }
          { agent.kind = "cursor"; }
          { limits.cpuQuota = "2"; }
          { limits.tasks = 0; }
          { fragments.f.timeoutSeconds = 0; }
          { passEnv = [ "A-B" ]; }
          { binds = [ { src = ./.; } ]; }
          { limits.memory = "4G"; }
          { ports.publish = [ "localhost:8000:8000" ]; }
          { ports.publish = [ "0.0.0.0:8000:8000" ]; }
          {
            sidecars.s = {
              command = [ "x" ];
              port = 0;
            };
          }
          { ports.host = [ 70000 ]; }
          {
            sidecars.s = {
              command = [ "x" ];
              port = 1;
              via = "tls";
            };
          }
        ];
    expected = [
      false
      false
      false
      false
      false
      false
      false
      true
      false
      true
      false
      false
      false
    ];
  };
}
