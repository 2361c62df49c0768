{
  lib,
  stdenv,
  rustPlatform,
  glibc,
  bubblewrap,
  installShellFiles,
  makeBinaryWrapper,
  versionCheckHook,
}:
let
  # The workspace root, without build output or anything `lib.cleanSource` drops
  # (.git, result links, editor leftovers).
  root = ../rust;
  src = lib.cleanSourceWith {
    name = "cell-source";
    src = lib.cleanSource root;
    filter = path: _type: path != toString (root + "/target");
  };
  cargoToml = lib.importTOML (root + "/Cargo.toml");
in
rustPlatform.buildRustPackage (finalAttrs: {
  pname = "cell";
  inherit (cargoToml.workspace.package) version;
  inherit src;

  cargoLock.lockFile = root + "/Cargo.lock";

  strictDeps = true;

  # Statically linked on glibc hosts (musl ones are already): each process a launch starts
  # (the launcher, cell-init) is spared glibc's dynamic loader, ~0.35 ms each on the
  # benchmark machine (scripts/release.sh, which scripts/install uses, says more). Static
  # glibc resolves users through nscd, which NixOS runs by default. buildRustPackage names the
  # target, so the flag reaches only the binaries, never the proc-macro crates.
  buildInputs = lib.optionals stdenv.hostPlatform.isGnu [ glibc.static ];
  env.RUSTFLAGS = lib.optionalString stdenv.hostPlatform.isGnu "-C target-feature=+crt-static";

  nativeBuildInputs = [
    installShellFiles
    makeBinaryWrapper
  ];

  # The integration tests need user namespaces, which the Nix build sandbox does not
  # offer; with this set they say loudly that they skip instead of failing.
  env.CELL_TESTS_ALLOW_NO_USERNS = "1";
  nativeCheckInputs = [ bubblewrap ];

  # cell finds cell-init next to its own canonical path; wrapProgram keeps the real
  # binary in $out/bin (as .cell-wrapped), so that still holds. Bubblewrap comes from
  # the store, never from the user's PATH. nixpkgs' bubblewrap (0.11.x in the locked
  # revision, as far as could be looked up) still applies each bind's flags by remounting
  # after re-reading /proc/self/mountinfo (~0.15 ms per bind here, `cell doctor` says which
  # kind a bubblewrap is); one with mount_setattr (containers/bubblewrap#756, merged after
  # 0.11) would spare that: once nixpkgs ships a release with it, nothing changes here; until
  # then it takes `bubblewrap.overrideAttrs` with `src` at a commit that has #756 (and its
  # follow-ups, #777) and that commit's hash, which this workplace cannot fetch to compute.
  postInstall =
    lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
      $out/bin/cell man > cell.1
      installManPage cell.1
      installShellCompletion --cmd cell \
        --bash <($out/bin/cell completions bash) \
        --zsh <($out/bin/cell completions zsh) \
        --fish <($out/bin/cell completions fish)
    ''
    + ''
      test -x $out/bin/cell-init
      wrapProgram $out/bin/cell --set CELL_BWRAP ${lib.getExe bubblewrap}
    '';

  # Runs the installed (wrapped) `cell --version` and compares it with `version`.
  doInstallCheck = true;
  nativeInstallCheckInputs = [ versionCheckHook ];

  meta = {
    description = "Declarative bubblewrap sandboxes for AI coding agents";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = finalAttrs.pname;
  };
})
