# `nixDaemon`: the host's Nix daemon inside the cell (./render.nix adds its bind and
# `NIX_REMOTE`). A way around the egress proxy, and the description says so.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  inherit (import ./lib.nix { inherit lib; }) absolute pathStr;
  cfg = config.nixDaemon;
in
{
  options.nixDaemon = {
    enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Let the cell use the host's Nix daemon: its socket directory is bound read-write
        and `NIX_REMOTE=daemon` is set.

        **This is a way around the egress proxy.** The daemon builds and fetches on the
        cell's behalf with the host's network, not the cell's: fixed-output derivations
        and substitutions reach any host, whatever `network.allow` says, and whatever the
        cell builds lands in the host's store. Enable it only for cells whose code you
        would let build on the host.
      '';
    };
    socket = mkOption {
      type = pathStr;
      default = "/nix/var/nix/daemon-socket";
      description = "Host directory holding the daemon's socket; bound at `/nix/var/nix/daemon-socket` inside.";
    };
  };

  config.assertions.nix-daemon =
    at: lib.optionals cfg.enable [ (absolute at "nixDaemon.socket" cfg.socket) ];
}
