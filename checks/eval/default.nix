# Pure-evaluation tests of the flake, the package expression, the modules and mkCell,
# against stub packages. Returns { ok; lines; }: `ok` is false when any test fails;
# `lines` says PASS or FAIL for each test (and SKIPPED for the home-manager tests when
# no home-manager checkout is given).
{
  lib,
  # The directory `lib` was imported from (nixpkgs.lib's lib/, or nixpkgs' own).
  libPath,
  # A home-manager source tree, or null.
  homeManager ? null,
}:
let
  ctx = import ./common.nix { inherit lib libPath homeManager; };
  inherit (lib.attrsets) unionOfDisjoint;

  tests = lib.foldl' unionOfDisjoint { } [
    (import ./flake-outputs.nix ctx)
    (import ./package.nix ctx)
    (import ./lock.nix ctx)
    (import ./nixos-module.nix ctx)
    (import ./mk-cell.nix ctx)
    (import ./chromium.nix ctx)
    (import ./schema.nix ctx)
    (lib.optionalAttrs (homeManager != null) (import ./home-manager-module.nix ctx))
  ];

  failures = lib.runTests tests;
  failed = lib.listToAttrs (map (f: lib.nameValuePair f.name f) failures);
  show = lib.generators.toPretty { multiline = false; };

  line =
    name:
    if failed ? ${name} then
      "FAIL ${name}: expected ${show failed.${name}.expected}, got ${show failed.${name}.result}"
    else
      "PASS ${name}";

  names = builtins.attrNames tests;
in
{
  ok = failures == [ ];
  lines =
    lib.optional (homeManager == null) "SKIPPED home-manager module tests: no home-manager source given"
    ++ map line names
    ++ [
      "${
        toString (builtins.length names - builtins.length failures)
      } passed, ${toString (builtins.length failures)} failed"
    ];
}
