# The flake's checks for one system.
{
  pkgs,
  cell,
  # The flake's nixosModules.default and lib.mkCell, for the VM tests.
  modules,
}:
let
  inherit (pkgs) lib;

  # Every .nix file of the repository, and nothing else.
  nixFiles = lib.cleanSourceWith {
    name = "cell-nix-files";
    src = lib.cleanSource ../.;
    filter =
      path: type: if type == "directory" then baseNameOf path != "target" else lib.hasSuffix ".nix" path;
  };

  evalTests = import ./eval {
    inherit lib;
    libPath = pkgs.path + "/lib";
  };

  # NixOS VM tests, one scenario per file (./vm/common.nix holds what they share); they
  # need KVM, so only where CI has it.
  vmTests = lib.optionalAttrs (pkgs.stdenv.hostPlatform.system == "x86_64-linux") (
    lib.mapAttrs'
      (
        file: _:
        lib.nameValuePair "vm-${lib.removeSuffix ".nix" file}" (
          import (./vm + "/${file}") {
            inherit pkgs;
            inherit (modules) nixos mkCell;
          }
        )
      )
      (
        lib.filterAttrs (
          file: type: type == "regular" && lib.hasSuffix ".nix" file && file != "common.nix"
        ) (builtins.readDir ./vm)
      )
  );
in
vmTests
// {
  # The package itself: its checkPhase runs the Rust tests.
  inherit cell;

  formatting =
    pkgs.runCommand "cell-nix-formatting"
      {
        src = nixFiles;
        nativeBuildInputs = [
          pkgs.nixfmt
          pkgs.deadnix
        ];
      }
      ''
        cd "$src"
        find . -name '*.nix' -type f -print0 | xargs -0 nixfmt --check
        find . -name '*.nix' -type f -print0 | xargs -0 deadnix --fail
        touch "$out"
      '';

  # The Chromium extension unpacker (pkgs/unpack-extension.py) on generated archives.
  extension-unpack =
    pkgs.runCommand "cell-extension-unpack-test"
      {
        nativeBuildInputs = [ pkgs.python3 ];
        env.UNPACK_EXTENSION = "${../pkgs/unpack-extension.py}";
      }
      ''
        bash ${./extension-unpack-test.sh}
        touch "$out"
      '';

  # The pure-evaluation tests of checks/eval, evaluated with this nixpkgs' lib.
  eval =
    pkgs.runCommand "cell-eval-tests"
      {
        report = lib.concatLines evalTests.lines;
        passAsFile = [ "report" ];
      }
      ''
        cat "$reportPath"
        ${lib.optionalString (!evalTests.ok) "exit 1"}
        touch "$out"
      '';
}
