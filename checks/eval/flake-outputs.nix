# The flake's outputs, evaluated against the stub nixpkgs of ./stubs.nix.
{
  lib,
  nixpkgs,
  flake,
  root,
  outputs,
  ...
}:
let
  systems = [
    "aarch64-linux"
    "x86_64-linux"
  ];
  perSystem = f: map f systems;
  # An output for one system, or {}: a missing one makes its test fail, not abort.
  get = output: system: outputs.${output}.${system} or { };
  stub = nixpkgs.legacyPackages;
in
{
  testFlakeHasOnlyTheNixpkgsInput = {
    expr = lib.mapAttrs (_: input: input.url or null) flake.inputs;
    expected.nixpkgs = "github:NixOS/nixpkgs/nixos-unstable";
  };

  testFlakeSystems = {
    expr = lib.genAttrs [ "packages" "apps" "formatter" "checks" ] (
      output: builtins.attrNames outputs.${output} or { }
    );
    expected = {
      packages = systems;
      apps = systems;
      formatter = systems;
      checks = systems;
    };
  };

  testFlakePackagesAreCellAndDefault = {
    expr = perSystem (system: builtins.attrNames (get "packages" system));
    expected = perSystem (_: [
      "cell"
      "cell-with-agents"
      "default"
    ]);
  };

  testFlakeDefaultPackageIsCell = {
    expr = perSystem (
      system:
      let
        p = get "packages" system;
      in
      p ? default && p.default == p.cell && p.default.postInstall == p.cell.postInstall
    );
    expected = perSystem (_: true);
  };

  testFlakePackageIsBuiltForItsSystem = {
    expr = perSystem (
      system:
      let
        p = get "packages" system;
      in
      {
        builder = p.cell.builder or null;
        pname = p.cell.pname or null;
        system = p.cell.system or null;
      }
    );
    expected = perSystem (system: {
      builder = "buildRustPackage";
      pname = "cell";
      inherit system;
    });
  };

  # The apps run `cell` wrapped with the four agents from nixpkgs on its PATH.
  testFlakeAppsRunCellWithAgents = {
    expr = perSystem (
      system:
      let
        apps = get "apps" system;
        program = apps.cell.program or "";
        withAgents = lib.removeSuffix "/bin/cell" program;
      in
      {
        types = lib.mapAttrs (_: app: app.type) apps;
        same = apps.default or null == apps.cell or { };
        named = withAgents == (get "packages" system).cell-with-agents.outPath or null;
      }
    );
    expected = perSystem (_: {
      types = {
        cell = "app";
        default = "app";
      };
      same = true;
      named = true;
    });
  };

  testFlakeAgentsWrapper =
    let
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      cell = outputs.packages.x86_64-linux.cell;
      w = outputs.packages.x86_64-linux.cell-with-agents;
      agents = [
        pkgs.claude-code
        pkgs.codex
        pkgs.gemini-cli
        pkgs.opencode
      ];
    in
    {
      expr = {
        wraps = lib.hasInfix "makeWrapper ${cell.outPath}/bin/cell $out/bin/cell" w.script;
        path = lib.hasInfix "--suffix PATH : ${lib.makeBinPath agents}" w.script;
        agents = map (a: a.name) w.agents;
      };
      expected = {
        wraps = true;
        path = true;
        agents = [
          "claude-code"
          "codex"
          "gemini-cli"
          "opencode"
        ];
      };
    };

  # The flake imports nixpkgs once more for the agents, allowing exactly claude-code.
  testFlakeAllowsOnlyClaudeCodeUnfree = {
    expr = perSystem (
      system:
      let
        w = (get "packages" system).cell-with-agents or { agents = [ ]; };
        configs = map (a: a.nixpkgsConfig or { }) w.agents;
        allow = (builtins.head configs).allowUnfreePredicate or (_: null);
      in
      {
        sameConfig = lib.all (c: c == builtins.head configs) configs;
        onlyPredicate = builtins.attrNames (builtins.head configs);
        agentSystem = map (a: a.system) w.agents;
        allowed = map allow [
          { pname = "claude-code"; }
          { name = "claude-code-2.0.1"; }
          { pname = "codex"; }
          { pname = "vscode"; }
        ];
      }
    );
    expected = perSystem (system: {
      sameConfig = true;
      onlyPredicate = [ "allowUnfreePredicate" ];
      agentSystem = [
        system
        system
        system
        system
      ];
      allowed = [
        true
        true
        false
        false
      ];
    });
  };

  testFlakeOverlayAddsCell = {
    expr =
      let
        added = outputs.overlays.default stub.x86_64-linux stub.x86_64-linux;
      in
      {
        names = builtins.attrNames added;
        sameAsPackage = added.cell or null == outputs.packages.x86_64-linux.cell;
        pname = added.cell.pname or null;
        version = added.cell.version or null;
      };
    expected = {
      names = [ "cell" ];
      sameAsPackage = true;
      inherit (outputs.packages.x86_64-linux.cell) pname version;
    };
  };

  testFlakeFormatterIsNixfmt = {
    expr = perSystem (system: get "formatter" system == stub.${system}.nixfmt);
    expected = perSystem (_: true);
  };

  testFlakeChecks = {
    expr = perSystem (
      system:
      let
        c = get "checks" system;
      in
      {
        names = builtins.attrNames c;
        packageIsCell = c.cell or null == (get "packages" system).cell or { };
      }
    );
    expected = perSystem (system: {
      names = [
        "cell"
        "eval"
        "extension-unpack"
        "formatting"
      ]
      # The VM tests, on x86_64-linux only.
      ++ lib.optionals (system == "x86_64-linux") [
        "vm-browser"
        "vm-isolation"
        "vm-mk-cell"
        "vm-network"
      ];
      packageIsCell = true;
    });
  };

  testFlakeExtensionUnpackCheckRunsTheScriptTests = {
    expr =
      let
        c = (get "checks" "x86_64-linux").extension-unpack or { };
      in
      {
        tools = map (d: d.name) c.nativeBuildInputs or [ ];
        unpacker = c.env.UNPACK_EXTENSION or null;
        script = c.script or null;
      };
    expected = {
      tools = [ "python3" ];
      unpacker = "${root + "/pkgs/unpack-extension.py"}";
      script = ''
        bash ${root + "/checks/extension-unpack-test.sh"}
        touch "$out"
      '';
    };
  };

  testFlakeFormattingCheckRunsNixfmtAndDeadnix = {
    expr =
      let
        formatting = (get "checks" "x86_64-linux").formatting or { };
      in
      {
        tools = map (d: d.name) formatting.nativeBuildInputs or [ ];
        nixfmt = lib.hasInfix "xargs -0 nixfmt --check" formatting.script or "";
        deadnix = lib.hasInfix "xargs -0 deadnix --fail" formatting.script or "";
      };
    expected = {
      tools = [
        "nixfmt"
        "deadnix"
      ];
      nixfmt = true;
      deadnix = true;
    };
  };

  testFlakeFormattingCheckSeesOnlyNixFiles = {
    expr =
      let
        filter = (get "checks" "x86_64-linux").formatting.src.filter or (_: _: null);
      in
      map (args: filter (toString ../.. + args.path) args.type) [
        {
          path = "/flake.nix";
          type = "regular";
        }
        {
          path = "/pkgs";
          type = "directory";
        }
        {
          path = "/rust/Cargo.toml";
          type = "regular";
        }
        {
          path = "/rust/target";
          type = "directory";
        }
      ];
    expected = [
      true
      true
      false
      false
    ];
  };
}
