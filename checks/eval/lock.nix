# flake.lock pins exactly the agreed nixos-unstable revision.
{ root, ... }:
let
  lock = builtins.fromJSON (builtins.readFile (root + "/flake.lock"));
in
{
  testLockShape = {
    expr = {
      inherit (lock) version root;
      rootInputs = lock.nodes.${lock.root}.inputs;
      nodes = builtins.attrNames lock.nodes;
    };
    expected = {
      version = 7;
      root = "root";
      rootInputs.nixpkgs = "nixpkgs";
      nodes = [
        "nixpkgs"
        "root"
      ];
    };
  };

  testLockNixpkgsRevision = {
    expr = lock.nodes.nixpkgs;
    expected = {
      locked = {
        lastModified = 1781577229;
        narHash = "sha256-lrp67w8AulE9Ks53n27I45ADSzbOCn4H+CNW1Ck8B+8=";
        owner = "NixOS";
        repo = "nixpkgs";
        rev = "567a49d1913ce81ac6e9582e3553dd90a955875f";
        type = "github";
      };
      original = {
        owner = "NixOS";
        ref = "nixos-unstable";
        repo = "nixpkgs";
        type = "github";
      };
    };
  };
}
