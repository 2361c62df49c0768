# A stand-in for nixpkgs: the real `lib`, and packages and builders that only record
# what they were given, so the tests can look at what our expressions asked for.
# `libPath` is the directory `lib` was imported from; its parent is the stubs'
# `pkgs.path` (home-manager imports nixpkgs' lib/services from there).
{ lib, libPath }:
let
  # A derivation-shaped attrset. `==` on derivations compares outPath, so it depends on
  # the system and the name. Like a real derivation, passthru is lifted to the top, and
  # overrideAttrs re-makes it from the old attributes.
  fakeDrv =
    system: name: attrs:
    let
      self = {
        type = "derivation";
        inherit name system;
        outPath = "/nix/store/${
          builtins.substring 0 32 (builtins.hashString "sha256" "${system}/${name}")
        }-${name}";
        overrideAttrs = f: fakeDrv system name (attrs // f self);
      }
      // attrs
      // attrs.passthru or { };
    in
    self;

  # Stub packages for one platform; `buildSystem` differs from `system` for a cross build.
  mkPkgs =
    {
      system,
      buildSystem ? system,
      config ? { },
    }:
    let
      drv = fakeDrv system;
      # A package with a version and a main program, as many modules expect.
      pkg =
        name:
        drv name {
          pname = name;
          version = "2.40";
          meta.mainProgram = name;
          # The `config` this package set was imported with.
          nixpkgsConfig = config;
        };
      # pkgs.formats.*: the real types are in nixpkgs proper, not in lib.
      format = _kind: _settings: {
        type = lib.types.attrsOf lib.types.anything;
        generate = name: value: drv name { inherit value; };
      };
      pkgs = {
        inherit lib config system;
        callPackage = lib.callPackageWith pkgs;
        # For home-manager: its modules import nixpkgs' lib/services (in nixpkgs.lib too).
        path = dirOf libPath;

        stdenv = {
          hostPlatform = lib.systems.elaborate system;
          buildPlatform = lib.systems.elaborate buildSystem;
        };

        rustPlatform.buildRustPackage =
          arg:
          let
            attrs = if builtins.isFunction arg then lib.fix arg else arg;
          in
          drv "${attrs.pname}-${attrs.version}" (attrs // { builder = "buildRustPackage"; });

        runCommand =
          name: env: script:
          drv name (env // { inherit script; });
        runCommandLocal = pkgs.runCommand;
        writeText = name: text: drv name { inherit text; };
        fetchurl = args: drv (args.name or (baseNameOf args.url)) (args // { builder = "fetchurl"; });
        writeTextFile = args: drv args.name args;
        writeShellScript = name: text: drv name { inherit text; };
        writeShellScriptBin =
          name: text:
          drv name {
            inherit text;
            meta.mainProgram = name;
          };
        symlinkJoin = args: drv args.name args;
        formats = lib.genAttrs [
          "ini"
          "json"
          "toml"
          "yaml"
          "keyValue"
        ] format;

        bubblewrap = drv "bubblewrap" { meta.mainProgram = "bwrap"; };
        glibc = drv "glibc" { } // {
          static = drv "glibc-static" { };
        };
        installShellFiles = drv "install-shell-files" { };
        makeBinaryWrapper = drv "make-binary-wrapper-hook" { };
        makeWrapper = drv "make-shell-wrapper-hook" { };
        versionCheckHook = drv "version-check-hook" { };
        nixfmt = drv "nixfmt" { meta.mainProgram = "nixfmt"; };
        deadnix = drv "deadnix" { meta.mainProgram = "deadnix"; };
        python3 = drv "python3" { meta.mainProgram = "python3"; };
        playwright-mcp = drv "playwright-mcp" { meta.mainProgram = "playwright-mcp"; };
      }
      // lib.genAttrs [
        "chromium"
        "claude-code"
        "codex"
        "coreutils"
        "gemini-cli"
        "glibcLocales"
        "man"
        "opencode"
        "shared-mime-info"
        "systemd"
      ] pkg;
    in
    pkgs;

  # More systems than the flake supports, so a test sees which ones it picks.
  stubSystems = [
    "x86_64-linux"
    "aarch64-linux"
    "x86_64-darwin"
    "riscv64-linux"
  ];

  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs stubSystems (system: mkPkgs { inherit system; });
  };

  # flake.nix, with `import nixpkgs { system; config; }` (the flake's unfree-allowing
  # package set for the agents) answered by the stubs.
  flake = builtins.scopedImport {
    import = p: if p == nixpkgs then mkPkgs else builtins.import p;
  } ../../flake.nix;

  # The flake's outputs as `nix` would compute them, with the stub nixpkgs as input.
  outputs = flake.outputs {
    self = outputs // {
      outPath = ../..;
    };
    inherit nixpkgs;
  };
in
{
  inherit
    lib
    libPath
    mkPkgs
    nixpkgs
    flake
    outputs
    ;
  root = ../..;
}
