# `limits`: the cell's resource limits (rendered as the JSON `limits`; ./wrappers.nix
# starts a cell that declares any in a delegated transient systemd scope). The types say
# everything there is to check.
{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.limits = {
    tasks = mkOption {
      type = types.nullOr (types.either types.ints.positive (types.enum [ "max" ]));
      default = null;
      description = ''
        Most tasks (processes and threads) in the cell at once, or `"max"` for no limit.
        `null` keeps cell's default (4096).
      '';
      example = 512;
    };
    memory = mkOption {
      type = types.nullOr (types.strMatching "[0-9]+[KMGT]?|[0-9]+%|max");
      default = null;
      description = ''
        Most memory of the cell: `"4G"` (K, M, G, T are powers of 1024), a share of the
        host's RAM (`"50%"`), or `"max"`. `null` keeps cell's default (`"75%"`).
      '';
      example = "4G";
    };
    cpuWeight = mkOption {
      type = types.nullOr (types.ints.between 1 10000);
      default = null;
      description = ''
        The cell's share of CPU time against its sibling groups when the CPU is busy
        (cgroup v2 `cpu.weight`, 100 is an ordinary group). `null` keeps cell's default
        (100).
      '';
      example = 50;
    };
    cpuQuota = mkOption {
      type = types.nullOr (types.strMatching "[0-9]+%");
      default = null;
      description = "A hard cap on the cell's CPU time (`200%` is two CPUs).";
      example = "200%";
    };
    unsafeNoLimits = mkOption {
      type = types.bool;
      default = false;
      description = ''
        No limits at all (no cgroup, no rlimits): a fork bomb or a memory hog in the cell
        can take the host down. For measuring and debugging only.
      '';
    };
  };
}
