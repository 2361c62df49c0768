# The home-manager module (the flake's homeManagerModules.default), evaluated with
# home-manager's own module list (modules/modules.nix, `minimal`, without its nixpkgs
# module) and its own option declarations: xdg.configFile, home.file, home.packages,
# assertions. Stand-ins replace only what lives in nixpkgs proper: the packages (stubs),
# and nixos/modules/misc/{assertions,meta}.nix, which home-manager imports from
# `pkgs.path` (./nixos-options.nix declares assertions and warnings as NixOS does; meta
# as below).
{
  lib,
  outputs,
  homeManager,
  stub,
  cellPkg,
  failed,
  golden,
  example,
  ...
}:
let
  hmLib = import (homeManager + "/modules/lib/stdlib-extended.nix") lib;

  metaStub =
    { lib, ... }:
    {
      options.meta = lib.mkOption {
        type = lib.types.attrsOf lib.types.raw;
        default = { };
        description = "As nixos/modules/misc/meta.nix (maintainers, doc, ...).";
      };
    };
  fromNixpkgs = file: toString (stub.path + "/nixos/modules/misc/${file}");
  replace =
    m:
    if !(builtins.isPath m || builtins.isString m) then
      m
    else if toString m == fromNixpkgs "assertions.nix" then
      {
        # Only assertions and warnings: the other NixOS options of the stand-in would
        # collide with nothing, but are not home-manager's.
        options = {
          inherit ((lib.evalModules { modules = [ ./nixos-options.nix ]; }).options) assertions warnings;
        };
      }
    else if toString m == fromNixpkgs "meta.nix" then
      metaStub
    else
      m;

  hmModules = map replace (
    import (homeManager + "/modules/modules.nix") {
      pkgs = stub;
      lib = hmLib;
      minimal = true;
      useNixpkgsModule = false;
    }
  );

  eval =
    cellConfig:
    (hmLib.evalModules {
      modules = hmModules ++ [
        # The minimal set's bash module refers to these.
        (homeManager + "/modules/programs/fish.nix")
        (homeManager + "/modules/programs/man")
        outputs.homeManagerModules.default
        {
          home = {
            username = "alice";
            homeDirectory = "/home/alice";
            stateVersion = "25.11";
          };
          programs.cell = cellConfig;
        }
      ];
      class = "homeManager";
      specialArgs.modulesPath = toString (homeManager + "/modules");
    }).config;

  full = eval ({ enable = true; } // example);
  # As on NixOS, except that home-manager has no account to default `runAs` to: only the
  # cell that sets one renders it (cells a user launches run as that user anyway).
  nixosGolden = golden "full";
  hmGolden = nixosGolden // {
    cells = lib.mapAttrs (
      name: c: if name == "claude" then c else removeAttrs c [ "runAs" ]
    ) nixosGolden.cells;
  };
in
{
  testHomeManagerFullGolden = {
    expr = builtins.fromJSON full.programs.cell.configFile.json.text;
    expected = hmGolden;
  };

  testHomeManagerXdgConfigFile = {
    expr =
      let
        f = full.xdg.configFile."cell/config.json";
        # home-manager turns it into a home.file entry relative to the home directory.
        h = lib.findFirst (e: e.target == ".config/cell/config.json") null (
          builtins.attrValues full.home.file
        );
      in
      {
        source =
          f.source == full.programs.cell.configFile.outPath || f.source == full.programs.cell.configFile;
        homeFile = h != null && h.source == f.source;
      };
    expected = {
      source = true;
      homeFile = true;
    };
  };

  testHomeManagerPackages = {
    expr = builtins.filter (n: lib.hasPrefix "cell" n) (map (p: p.name) full.home.packages);
    expected = [
      cellPkg.name
      "cell-claude"
      "cell-sandbox"
    ];
  };

  # Limits use the host's systemd-run (the running user manager's), not nixpkgs'.
  testHomeManagerWrapperUsesHostSystemdRun = {
    expr = lib.hasPrefix "exec systemd-run --user --scope" (
      (lib.findFirst (p: p.name == "cell-claude") { text = ""; } full.home.packages).text
    );
    expected = true;
  };

  # The browser: its command beside cell-web, its MCP server in the rendered file.
  testHomeManagerChromium = {
    expr =
      let
        c = eval {
          enable = true;
          cells.web.chromium = {
            enable = true;
            extensions.capsolver.enable = true;
            mcp.enable = true;
          };
        };
        json = builtins.fromJSON c.programs.cell.configFile.json.text;
      in
      {
        packages = builtins.filter (n: lib.hasPrefix "cell" n) (map (p: p.name) c.home.packages);
        servers = builtins.attrNames json.cells.web.mcp.servers;
        launcher =
          json.cells.web.mcp.servers.playwright.command
          == c.programs.cell.cells.web.chromium.mcp.launcher.outPath;
        failed = failed c;
      };
    expected = {
      packages = [
        cellPkg.name
        "cell-web"
        "cell-web-chromium"
      ];
      servers = [ "playwright" ];
      launcher = true;
      failed = [ ];
    };
  };

  testHomeManagerNoHomeManagerAssertionFails = {
    expr = failed full;
    expected = [ ];
  };

  testHomeManagerAssertions = {
    expr = failed (eval {
      enable = true;
      cells.bad.agent.kind = "custom";
      defaultCell = "missing";
    });
    expected = [
      "programs.cell.cells.bad.agent.command must be set when programs.cell.cells.bad.agent.kind is \"custom\" (or pick a built-in kind: claude, codex, gemini, opencode)."
      "programs.cell.defaultCell is \"missing\", but no cell has that name; declare programs.cell.cells.missing or pick one of: bad."
    ];
  };

  testHomeManagerDisabledWritesNothing = {
    expr =
      let
        c = eval { cells.x = { }; };
      in
      {
        file = c.xdg.configFile ? "cell/config.json";
        packages = builtins.filter (n: lib.hasPrefix "cell" n) (map (p: p.name) c.home.packages);
      };
    expected = {
      file = false;
      packages = [ ];
    };
  };
}
