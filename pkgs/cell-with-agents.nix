# `cell` with the four agents from nixpkgs on its PATH, for `nix run .#cell -- claude`
# with no configuration: the built-in default config finds an agent on the host's PATH
# and binds it read-only into the cell. `pkgs` must allow the unfree claude-code (the
# flake imports nixpkgs allowing exactly that package).
{
  lib,
  runCommand,
  makeBinaryWrapper,
  cell,
  claude-code,
  codex,
  gemini-cli,
  opencode,
}:
let
  agents = [
    claude-code
    codex
    gemini-cli
    opencode
  ];
in
runCommand "cell-with-agents-${cell.version}"
  {
    nativeBuildInputs = [ makeBinaryWrapper ];
    passthru = { inherit agents cell; };
    meta = cell.meta // {
      description = "cell with Claude Code, Codex, Gemini CLI and opencode on its PATH";
    };
  }
  ''
    # `cell` finds cell-init beside its own canonical path, which stays in ${cell}/bin:
    # this wrapper execs the package's `cell`, it does not copy it.
    makeWrapper ${lib.getExe cell} $out/bin/cell \
      --suffix PATH : ${lib.makeBinPath agents}
    ln -s ${cell}/share $out/share
  ''
