# lib.mkCell (pkgs/mk-cell.nix, through the flake's lib.mkCell) with the stub packages.
{
  lib,
  nixpkgs,
  outputs,
  stub,
  cellPkg,
  golden,
  ...
}:
let
  inherit (outputs.lib) mkCell;

  hello = mkCell {
    pkgs = stub;
    name = "hello-cell";
    command = [
      "hello"
      "--greeting=hi there"
    ];
    worktreePath = "/srv/work";
    extraArgs = [
      "--bind"
      "/srv/ref:ro"
    ];
    allow = [ "example.com" ];
    logDir = "/var/log/hello";
    nixDaemonSocket = "/run/nix-daemon";
    cellConfig.limits.memory = "1G";
  };

  attempt = args: (builtins.tryEval (mkCell args).text).success;
in
{
  testMkCellGolden = {
    expr = hello.document;
    expected = golden "mk-cell";
  };

  testMkCellFileHoldsTheDocument = {
    expr = builtins.fromJSON hello.configFile.json.text == hello.document;
    expected = true;
  };

  testMkCellArgv = {
    expr = hello.argv;
    expected = [
      "systemd-run"
      "--user"
      "--scope"
      "--quiet"
      "--collect"
      "-p"
      "Delegate=yes"
      "--"
      "${cellPkg.outPath}/bin/cell"
      "--config"
      hello.configFile.outPath
      "run"
      "--cell"
      "default"
      "--bind"
      "/srv/ref:ro"
      "--"
      "hello"
      "--greeting=hi there"
    ];
  };

  testMkCellScript = {
    expr = {
      inherit (hello) name;
      inherit (hello.meta) mainProgram;
      text = hello.text;
    };
    expected = {
      name = "hello-cell";
      mainProgram = "hello-cell";
      text = ''
        exec ${lib.escapeShellArgs hello.argv} "$@"
      '';
    };
  };

  testMkCellEverySystemOfTheFlake = {
    expr = map (
      system:
      (mkCell {
        pkgs = nixpkgs.legacyPackages.${system};
        name = "x";
        command = "true";
      }).system
    ) (builtins.attrNames outputs.packages);
    expected = builtins.attrNames outputs.packages;
  };

  testMkCellRefusesOtherSystemsAndBadPaths = {
    expr = {
      darwin = attempt {
        pkgs = nixpkgs.legacyPackages.x86_64-darwin;
        name = "x";
        command = "true";
      };
      relativeWorktree = attempt {
        pkgs = stub;
        name = "x";
        command = "true";
        worktreePath = "src";
      };
      fine = attempt {
        pkgs = stub;
        name = "x";
        command = "true";
      };
    };
    expected = {
      darwin = false;
      relativeWorktree = false;
      fine = true;
    };
  };
}
