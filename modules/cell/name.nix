# `name`: the cell's name, its attribute name, which must suit a command name and a
# directory name (`cell-<name>`, `$XDG_DATA_HOME/cell/<name>`).
{ lib, name, ... }:
let
  inherit (lib) literalExpression mkOption types;
  inherit (import ./lib.nix { inherit lib; }) cellNameRegex;
in
{
  options.name = mkOption {
    type = types.str;
    default = name;
    defaultText = literalExpression "<name>";
    readOnly = true;
    description = "The cell's name: its attribute name (lowercase letters, digits, `-`, `_`).";
  };

  config.assertions.name = at: [
    {
      assertion = builtins.match cellNameRegex name != null;
      message = "${at}: the cell name \"${name}\" must be lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 48 characters; rename the attribute.";
    }
  ];
}
