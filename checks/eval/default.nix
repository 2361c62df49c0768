# Pure-evaluation tests of the flake and the package expression, against stub packages.
# Returns { ok; lines; }: `ok` is false when any test fails; `lines` says PASS or FAIL
# for each test.
{ lib }:
let
  ctx = import ./stubs.nix { inherit lib; };
  inherit (lib.attrsets) unionOfDisjoint;

  tests = lib.foldl' unionOfDisjoint { } [
    (import ./flake-outputs.nix ctx)
    (import ./package.nix ctx)
    (import ./lock.nix ctx)
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
  lines = map line names ++ [
    "${
      toString (builtins.length names - builtins.length failures)
    } passed, ${toString (builtins.length failures)} failed"
  ];
}
