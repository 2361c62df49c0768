# `security`: protected paths in the worktree and the seccomp filter's escape hatch.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  inherit (import ./lib.nix { inherit lib; }) relative;
in
{
  options.security = {
    defaultProtectedPaths = mkOption {
      type = types.bool;
      default = true;
      description = "Keep the built-in protected paths (`.git/hooks/`, `.git/config`, `.envrc`, ...) read-only.";
    };
    protectedPaths = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = ''
        More paths, relative to the worktree, read-only inside the cell (including ones
        that do not exist yet). A trailing `/` marks a directory.
      '';
      example = [
        "scripts/deploy.sh"
        "ci/"
      ];
    };
    unsafeAllowAllSyscalls = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Run without the seccomp filter. Only for debugging a program the filter breaks:
        it re-opens ptrace, `io_uring`, bpf, terminal injection and nested namespaces.
      '';
    };
  };

  config.assertions.security =
    at:
    lib.imap0 (i: relative at "security.protectedPaths.[${toString i}]") config.security.protectedPaths;
}
