# Entry point for scripts/nix-check:
#   nix-instantiate --eval --strict --json checks/eval/run.nix \
#     --argstr nixpkgsLib DIR [--argstr homeManager DIR]
# where DIR is a checkout of nix-community/nixpkgs.lib (absolute path), and homeManager a
# checkout of nix-community/home-manager ("" or absent: its tests are skipped, loudly).
{
  nixpkgsLib,
  homeManager ? "",
}:
import ./. {
  lib = import (/. + nixpkgsLib + "/lib");
  libPath = /. + nixpkgsLib + "/lib";
  homeManager = if homeManager == "" then null else /. + homeManager;
}
