# Entry point for scripts/nix-check:
#   nix-instantiate --eval --strict --json checks/eval/run.nix --argstr nixpkgsLib DIR
# where DIR is a checkout of nix-community/nixpkgs.lib (absolute path).
{ nixpkgsLib }:
import ./. { lib = import (/. + nixpkgsLib + "/lib"); }
