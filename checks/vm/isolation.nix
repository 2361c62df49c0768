# A cell declared with the NixOS module runs a fake agent that probes its jail: the
# worktree is the only writable host directory, the cell's home persists between runs
# and is not the user's, the rest of the user's home and the cell's own config cannot be
# touched, and the host's processes are invisible.
{
  pkgs,
  nixos,
  ...
}:
let
  # Writes one `name=result` line per probe to report.txt in the worktree.
  fakeAgent = pkgs.writeShellScript "fake-agent" ''
    PATH=${pkgs.coreutils}/bin:${pkgs.procps}/bin
    out=$PWD/report.txt
    : >"$out"
    probe() { if "''${@:2}" >/dev/null 2>&1; then echo "$1=yes" >>"$out"; else echo "$1=no" >>"$out"; fi; }
    probe worktree-write touch "$PWD/written-by-agent"
    probe home-is-users test -e /home/alice/secret.txt
    probe host-home-write touch /home/alice/escaped
    probe config-write sh -c 'echo {} > /etc/cell/config.json'
    probe root-readable ls /root
    probe git-hooks-write touch "$PWD/.git/hooks/pre-commit"
    probe sees-host-sleeper sh -c 'ps -eo comm | grep -qx host-sleeper'
    if [ -e "$HOME/persisted" ]; then echo "home-persisted=yes" >>"$out"; else echo "home-persisted=no" >>"$out"; fi
    touch "$HOME/persisted"
    echo "home=$HOME" >>"$out"
    echo "uid=$(id -u)" >>"$out"
  '';
in
(import ./common.nix { inherit pkgs nixos; }).test {
  name = "cell-isolation";

  machine = {
    programs.cell = {
      enable = true;
      cells.agent = {
        agent = {
          kind = "custom";
          command = [ "${fakeAgent}" ];
        };
        network.mode = "none";
      };
    };
    environment.systemPackages = [ pkgs.git ];
  };

  testScript = ''
    machine.wait_for_unit("multi-user.target")
    machine.wait_for_unit("user@1000.service")
    as_alice("echo top-secret > ~/secret.txt && mkdir ~/project && cd ~/project && git init -q")
    machine.succeed("(exec -a host-sleeper sleep 600) >/dev/null 2>&1 &")

    with subtest("the wrapper runs the declared agent in the cell"):
        as_alice("cd ~/project && cell-agent")
        report = dict(
            line.split("=", 1)
            for line in as_alice("cat ~/project/report.txt").split()
        )
        print(report)

    with subtest("worktree: writable, and the only writable host directory"):
        assert report["worktree-write"] == "yes", report
        machine.succeed("test -e /home/alice/project/written-by-agent")
        assert report["host-home-write"] == "no", report
        machine.fail("test -e /home/alice/escaped")
        assert report["git-hooks-write"] == "no", report
        machine.fail("test -e /home/alice/project/.git/hooks/pre-commit")

    with subtest("home: the cell's own, persistent, not the user's"):
        assert report["home-is-users"] == "no", report
        assert report["home-persisted"] == "no", report
        assert report["uid"] == "1000", report
        machine.succeed("test -e /home/alice/.local/share/cell/agent/home/persisted")
        as_alice("cd ~/project && cell-agent")
        assert "home-persisted=yes" in as_alice("cat ~/project/report.txt")

    with subtest("the host: config read-only, /root and host processes invisible"):
        assert report["config-write"] == "no", report
        assert report["root-readable"] == "no", report
        assert report["sees-host-sleeper"] == "no", report
        machine.succeed("grep -q '\"agent\"' /etc/cell/config.json")
  '';
}
