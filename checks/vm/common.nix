# What the VM tests share: one machine running the flake's NixOS module, with the user
# alice (uid 1000, lingering, so her user manager runs), and in the test script
# `as_alice(cmd)`, which runs `cmd` in alice's login shell with her user manager's
# environment (`ALICE_ENV`). Each test adds its own configuration and script.
{ pkgs, nixos }:
{
  test =
    {
      name,
      # A NixOS module: the machine's own configuration.
      machine,
      testScript,
    }:
    pkgs.testers.runNixOSTest {
      inherit name;

      nodes.machine = {
        imports = [
          nixos
          machine
        ];
        users.users.alice = {
          isNormalUser = true;
          uid = 1000;
          linger = true;
        };
      };

      testScript = ''
        import shlex

        ALICE_ENV = (
            "export XDG_RUNTIME_DIR=/run/user/1000"
            " DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus; "
        )

        def as_alice(cmd):
            return machine.succeed("su - alice -c " + shlex.quote(ALICE_ENV + cmd))

      ''
      + testScript;
    };
}
