# The rendered file, as a store path that exists only when `cell` accepts it (the
# sops-nix manifest pattern): a `runCommand` that runs the packaged `cell --config FILE
# check` and copies the file to `$out`. Config errors (exit 2, "<file>:
# cells.<name>.<field>: ...") fail the build; `check` touches no file system, so what only
# the real host can judge (a bind source that exists there, user namespaces) is left to
# the launch.
{ lib, pkgs }:
{
  # The package whose `cell` checks the file.
  cell,
  # The document (./render.nix).
  document,
  # false: the plain file (the build platform cannot run `cell`).
  validate ? true,
  name ? "cell-config.json",
}:
let
  json = pkgs.writeText name (builtins.toJSON document);
in
if !validate then
  json
else
  pkgs.runCommand name
    {
      inherit json;
      nativeBuildInputs = [ cell ];
    }
    ''
      export HOME=$TMPDIR
      ${lib.getExe cell} --config "$json" check
      cp "$json" "$out"
    ''
