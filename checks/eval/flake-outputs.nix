# The flake's outputs, evaluated against the stub nixpkgs of ./stubs.nix.
{
  lib,
  nixpkgs,
  flake,
  outputs,
  ...
}:
let
  systems = [
    "aarch64-linux"
    "x86_64-linux"
  ];
  perSystem = f: map f systems;
  stub = nixpkgs.legacyPackages;
in
{
  testFlakeHasOnlyTheNixpkgsInput = {
    expr = lib.mapAttrs (_: input: input.url or null) flake.inputs;
    expected.nixpkgs = "github:NixOS/nixpkgs/nixos-unstable";
  };

  testFlakeSystems = {
    expr = lib.mapAttrs (_: builtins.attrNames) {
      inherit (outputs)
        packages
        apps
        formatter
        checks
        ;
    };
    expected = {
      packages = systems;
      apps = systems;
      formatter = systems;
      checks = systems;
    };
  };

  testFlakePackagesAreCellAndDefault = {
    expr = perSystem (system: builtins.attrNames outputs.packages.${system});
    expected = perSystem (_: [
      "cell"
      "default"
    ]);
  };

  testFlakeDefaultPackageIsCell = {
    expr = perSystem (
      system:
      let
        p = outputs.packages.${system};
      in
      p.default == p.cell && p.default.postInstall == p.cell.postInstall
    );
    expected = perSystem (_: true);
  };

  testFlakePackageIsBuiltForItsSystem = {
    expr = perSystem (
      system:
      let
        p = outputs.packages.${system}.cell;
      in
      {
        inherit (p) builder pname system;
      }
    );
    expected = perSystem (system: {
      builder = "buildRustPackage";
      pname = "cell";
      inherit system;
    });
  };

  testFlakeAppsRunBinCell = {
    expr = perSystem (
      system: lib.mapAttrs (_: app: { inherit (app) type program; }) outputs.apps.${system}
    );
    expected = perSystem (
      system:
      let
        app = {
          type = "app";
          program = "${outputs.packages.${system}.cell.outPath}/bin/cell";
        };
      in
      {
        cell = app;
        default = app;
      }
    );
  };

  testFlakeOverlayAddsCell = {
    expr =
      let
        added = outputs.overlays.default stub.x86_64-linux stub.x86_64-linux;
      in
      {
        names = builtins.attrNames added;
        sameAsPackage = added.cell == outputs.packages.x86_64-linux.cell;
        inherit (added.cell) pname version;
      };
    expected = {
      names = [ "cell" ];
      sameAsPackage = true;
      inherit (outputs.packages.x86_64-linux.cell) pname version;
    };
  };

  testFlakeFormatterIsNixfmt = {
    expr = perSystem (system: outputs.formatter.${system} == stub.${system}.nixfmt);
    expected = perSystem (_: true);
  };

  testFlakeChecks = {
    expr = perSystem (
      system:
      let
        c = outputs.checks.${system};
      in
      {
        names = builtins.attrNames c;
        packageIsCell = c.cell == outputs.packages.${system}.cell;
      }
    );
    expected = perSystem (_: {
      names = [
        "cell"
        "eval"
        "formatting"
      ];
      packageIsCell = true;
    });
  };

  testFlakeFormattingCheckRunsNixfmtAndDeadnix = {
    expr =
      let
        inherit (outputs.checks.x86_64-linux) formatting;
      in
      {
        tools = map (d: d.name) formatting.nativeBuildInputs;
        nixfmt = lib.hasInfix "xargs -0 nixfmt --check" formatting.script;
        deadnix = lib.hasInfix "xargs -0 deadnix --fail" formatting.script;
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
        inherit (outputs.checks.x86_64-linux.formatting.src) filter;
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
