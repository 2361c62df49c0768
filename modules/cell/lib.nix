# What the feature files of the cell submodule share: the built-in agent kinds, the path
# type, the shape checks of paths and names, and the assertions built on them, each
# message naming the option to change (`at` is the cell's option path, e.g.
# "programs.cell.cells.claude").
{ lib }:
rec {
  # The built-in agent kinds; each is a `cell <kind>` subcommand.
  agentKinds = [
    "claude"
    "codex"
    "gemini"
    "opencode"
  ];

  cellNameRegex = "[a-z0-9][a-z0-9_-]{0,47}";
  envNameRegex = "[A-Za-z_][A-Za-z0-9_]*";

  # Paths are plain strings (never Nix path values: those would be copied into the store,
  # which is wrong for secrets and home directories); their shape is checked by assertions
  # that name the option and say how to fix it.
  pathStr = lib.types.str;

  # Whether `p` is absolute and normalised (no `.`, `..` or NUL), as the Rust side demands.
  isAbsolute =
    p:
    lib.hasPrefix "/" p
    && !(builtins.elem "." (lib.splitString "/" p))
    && !(builtins.elem ".." (lib.splitString "/" p));

  # Whether `p` is relative and stays inside its base directory.
  isRelativeInside =
    p:
    let
      parts = lib.splitString "/" (lib.removeSuffix "/" p);
    in
    p != "" && !(lib.hasPrefix "/" p) && builtins.all (c: c != "" && c != "." && c != "..") parts;

  # `at.opt` must be an absolute path.
  absolute = at: opt: p: {
    assertion = isAbsolute p;
    message = "${at}.${opt} must be an absolute path without `.` or `..` components (starting with `/`); got \"${p}\".";
  };

  # The same for an optional path: no assertion when it is null.
  absoluteIfSet =
    at: opt: p:
    if p == null then [ ] else [ (absolute at opt p) ];

  # `at.opt` must be a path relative to its base directory that stays inside it.
  relative = at: opt: p: {
    assertion = isRelativeInside p;
    message = "${at}.${opt} must be a path relative to its base directory without `/` at the start, `.` or `..`; got \"${p}\".";
  };

  # `k`, a key of `at.opt`, must be an environment variable name.
  envName = at: opt: k: {
    assertion = builtins.match envNameRegex k != null;
    message = "${at}.${opt}: \"${k}\" is not a valid environment variable name (letters, digits and `_`, not starting with a digit).";
  };

  # An account name as `useradd` takes it, never root: a cell started by root must not be
  # root on the host. `opt` is the option's full path.
  runAsAssertion = opt: account: {
    assertion =
      account == null
      || (account != "root" && builtins.match "[a-z_][a-z0-9_.-]{0,30}[$]?" account != null);
    message = "${opt} must name an unprivileged account (a login name such as \"cell\"), never root; got \"${toString account}\".";
  };
}
