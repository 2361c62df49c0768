# A stand-in for nixpkgs: the real `lib`, and packages and builders that only record
# what they were given, so the tests can look at what our expressions asked for.
{ lib }:
let
  # A derivation-shaped attrset. `==` on derivations compares outPath, so it depends on
  # the system and the name.
  fakeDrv =
    system: name: attrs:
    {
      type = "derivation";
      inherit name system;
      outPath = "/nix/store/${
        builtins.substring 0 32 (builtins.hashString "sha256" "${system}/${name}")
      }-${name}";
    }
    // attrs;

  # Stub packages for one platform; `buildSystem` differs from `system` for a cross build.
  mkPkgs =
    {
      system,
      buildSystem ? system,
    }:
    let
      drv = fakeDrv system;
      pkgs = {
        inherit lib;
        callPackage = lib.callPackageWith pkgs;

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

        bubblewrap = drv "bubblewrap" { meta.mainProgram = "bwrap"; };
        installShellFiles = drv "install-shell-files" { };
        makeBinaryWrapper = drv "make-binary-wrapper-hook" { };
        makeWrapper = drv "make-shell-wrapper-hook" { };
        versionCheckHook = drv "version-check-hook" { };
        nixfmt = drv "nixfmt" { meta.mainProgram = "nixfmt"; };
        deadnix = drv "deadnix" { meta.mainProgram = "deadnix"; };
      };
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

  flake = import ../../flake.nix;

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
    mkPkgs
    nixpkgs
    flake
    outputs
    ;
  root = ../..;
}
