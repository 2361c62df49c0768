# pkgs/cell.nix, as the flake builds it, against the stub nixpkgs of ./stubs.nix.
{
  lib,
  mkPkgs,
  root,
  stub,
  cellPkg,
  ...
}:
let
  pkg = cellPkg;

  # A cross build (x86_64 builds for aarch64) cannot run the binary it built.
  crossPkg =
    (mkPkgs {
      system = "aarch64-linux";
      buildSystem = "x86_64-linux";
    }).callPackage
      (root + "/pkgs/cell.nix")
      { };

  cargoToml = builtins.fromTOML (builtins.readFile (root + "/rust/Cargo.toml"));
  cargoLock = builtins.fromTOML (builtins.readFile (root + "/rust/Cargo.lock"));

  # A shell script as words: line continuations and blank space dropped.
  words =
    script:
    builtins.filter (w: builtins.isString w && w != "" && w != "\\") (
      builtins.split "[[:space:]]+" script
    );

  # Whether `needle` occurs in `list` as consecutive elements.
  hasRun =
    needle: list:
    let
      n = builtins.length needle;
      go = l: builtins.length l >= n && (lib.take n l == needle || go (builtins.tail l));
    in
    go list;

  installWords = words pkg.postInstall;
  bwrap = "${stub.bubblewrap.outPath}/bin/bwrap";
in
{
  # glibc hosts link statically (scripts/release.sh says why): the static archive is there
  # and the flag is set; buildRustPackage names the target, so proc macros stay dynamic.
  testPackageLinksStaticallyOnGlibc = {
    expr = {
      flags = pkg.env.RUSTFLAGS;
      inputs = map (d: d.name) pkg.buildInputs;
    };
    expected = {
      flags = "-C target-feature=+crt-static";
      inputs = [ "glibc-static" ];
    };
  };

  testPackageVersionIsCargoTomls = {
    expr = pkg.version;
    expected = cargoToml.workspace.package.version;
  };

  testPackageVersionIsCargoLocks = {
    expr = map (p: p.version) (builtins.filter (p: p.name == "cell") cargoLock.package);
    expected = [ pkg.version ];
  };

  testPackageCargoLockIsTheWorkspaces = {
    expr = {
      file = pkg.cargoLock.lockFile;
      exists = builtins.pathExists pkg.cargoLock.lockFile;
    };
    expected = {
      file = root + "/rust/Cargo.lock";
      exists = true;
    };
  };

  testPackageSourceIsRustWithoutTarget = {
    expr = {
      origin = pkg.src.origSrc;
      kept = map (p: pkg.src.filter (toString root + p) "directory") [
        "/rust/cell"
        "/rust/cell/src"
        "/rust/cell/tests"
      ];
      dropped = map (p: pkg.src.filter (toString root + p) "directory") [
        "/rust/target"
        "/rust/.git"
      ];
      cargoToml = pkg.src.filter (toString root + "/rust/Cargo.toml") "regular";
    };
    expected = {
      origin = root + "/rust";
      kept = [
        true
        true
        true
      ];
      dropped = [
        false
        false
      ];
      cargoToml = true;
    };
  };

  testPackageWrapsCellWithStoreBubblewrap = {
    expr = hasRun [
      "wrapProgram"
      "$out/bin/cell"
      "--set"
      "CELL_BWRAP"
      bwrap
    ] installWords;
    expected = true;
  };

  # The launcher finds cell-init next to its own canonical path. wrapProgram moves the
  # binary to $out/bin/.cell-wrapped, beside cell-init; nothing else may move either.
  testPackageKeepsCellInitBesideCell = {
    expr = {
      wrapsInPlace = hasRun [
        "wrapProgram"
        "$out/bin/cell"
      ] installWords;
      checksInit = hasRun [
        "test"
        "-x"
        "$out/bin/cell-init"
      ] installWords;
      moves = builtins.any (
        w:
        builtins.elem w [
          "mv"
          "makeWrapper"
          "makeBinaryWrapper"
        ]
      ) installWords;
    };
    expected = {
      wrapsInPlace = true;
      checksInit = true;
      moves = false;
    };
  };

  testPackageWrapperIsBinary = {
    expr = map (d: d.name) pkg.nativeBuildInputs;
    expected = [
      "install-shell-files"
      "make-binary-wrapper-hook"
    ];
  };

  testPackageInstallsManPageAndCompletions = {
    expr = {
      man = hasRun [ "$out/bin/cell" "man" ] installWords && hasRun [ "installManPage" ] installWords;
      completions =
        map (shell: hasRun [ "--${shell}" "<($out/bin/cell" "completions" "${shell})" ] installWords)
          [
            "bash"
            "zsh"
            "fish"
          ];
      command = hasRun [ "installShellCompletion" "--cmd" "cell" ] installWords;
    };
    expected = {
      man = true;
      completions = [
        true
        true
        true
      ];
      command = true;
    };
  };

  testPackageCrossBuildRunsNoTargetBinary = {
    expr =
      let
        w = words crossPkg.postInstall;
      in
      {
        runsCell =
          hasRun [ "$out/bin/cell" "man" ] w
          || builtins.elem "<($out/bin/cell" w
          || hasRun [ "installManPage" ] w;
        wraps = hasRun [
          "wrapProgram"
          "$out/bin/cell"
          "--set"
          "CELL_BWRAP"
        ] w;
      };
    expected = {
      runsCell = false;
      wraps = true;
    };
  };

  testPackageChecksRunWithoutUserNamespaces = {
    expr = {
      allow = pkg.env.CELL_TESTS_ALLOW_NO_USERNS or null;
      doCheck = pkg.doCheck or true;
      bubblewrap = builtins.elem stub.bubblewrap pkg.nativeCheckInputs;
    };
    expected = {
      allow = "1";
      doCheck = true;
      bubblewrap = true;
    };
  };

  testPackageInstallCheckRunsVersion = {
    expr = {
      inherit (pkg) doInstallCheck;
      hook = builtins.elem stub.versionCheckHook pkg.nativeInstallCheckInputs;
    };
    expected = {
      doInstallCheck = true;
      hook = true;
    };
  };

  testPackageMeta = {
    expr = {
      inherit (pkg.meta) mainProgram license platforms;
      described = builtins.isString pkg.meta.description && pkg.meta.description != "";
      exe = lib.getExe pkg;
    };
    expected = {
      mainProgram = "cell";
      license = lib.licenses.mit;
      platforms = lib.platforms.linux;
      described = true;
      exe = "${pkg.outPath}/bin/cell";
    };
  };
}
