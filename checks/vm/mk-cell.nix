# lib.mkCell: a package whose binary runs one command in a cell, here a probe that
# writes into the declared worktree and tries to escape it; and a cell with limits
# runs inside a transient systemd scope carrying them.
{
  pkgs,
  nixos,
  mkCell,
}:
let
  probe = pkgs.writeShellScript "probe" ''
    PATH=${pkgs.coreutils}/bin
    echo "args=$*" >"$PWD/probe.txt"
    if touch /home/alice/outside 2>/dev/null; then echo escaped >>"$PWD/probe.txt"; fi
  '';
  probeCell = mkCell {
    inherit pkgs;
    name = "probe-cell";
    command = [ "${probe}" ];
    worktreePath = "/home/alice/project";
    extraArgs = [ "--network=none" ];
  };
  sleeper = mkCell {
    inherit pkgs;
    name = "sleeper-cell";
    command = [ "${pkgs.coreutils}/bin/sleep" ];
    worktreePath = "/home/alice/project";
    cellConfig.limits = {
      memory = "512M";
      tasks = 64;
    };
  };
in
(import ./common.nix { inherit pkgs nixos; }).test {
  name = "cell-mk-cell";

  machine = {
    environment.systemPackages = [
      probeCell
      sleeper
    ];
  };

  testScript = ''
    machine.wait_for_unit("user@1000.service")
    as_alice("mkdir ~/project")

    with subtest("the command runs in its worktree with the caller's arguments"):
        as_alice("cd / && probe-cell one two")
        assert as_alice("cat ~/project/probe.txt").strip() == "args=one two"
        machine.fail("test -e /home/alice/outside")

    with subtest("limits: cell's own group in a delegated transient scope"):
        machine.succeed("su - alice -c " + shlex.quote(ALICE_ENV + "sleeper-cell 60") + " >/dev/null 2>&1 &")
        pid = machine.wait_until_succeeds("pgrep -u alice -x sleep").split()[0]
        group = machine.succeed(f"sed -n 's/^0:://p' /proc/{pid}/cgroup").strip()
        assert "/cell-default-" in group and ".scope/" in group, group
        assert machine.succeed(f"cat /sys/fs/cgroup{group}/pids.max").strip() == "64"
        assert machine.succeed(f"cat /sys/fs/cgroup{group}/memory.max").strip() == "536870912"
  '';
}
