# `project`: what a repository's approved `.cell.json` may add to the cell (nothing by default).
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  inherit (import ./lib.nix { inherit lib; }) absolute pathStr;
in
{
  options.project = {
    network = mkOption {
      type = types.bool;
      default = false;
      description = ''
        An approved `.cell.json` (`cell project allow`) may add hosts to the allowlist,
        which turns the proxy on.
      '';
    };
    env = mkOption {
      type = types.bool;
      default = false;
      description = "An approved `.cell.json` may set variables the cell and the launch do not set.";
    };
    bindsUnder = mkOption {
      type = types.listOf pathStr;
      default = [ ];
      description = ''
        An approved `.cell.json` may add read-only binds of paths below these host
        directories (links resolved).
      '';
      example = [ "/srv/datasets" ];
    };
  };

  config.assertions.project =
    at: lib.imap0 (i: absolute at "project.bindsUnder.[${toString i}]") config.project.bindsUnder;
}
