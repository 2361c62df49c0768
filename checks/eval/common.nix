# The one context every eval test file gets (./default.nix passes it): the stub nixpkgs and
# the flake's outputs evaluated against it (./stubs.nix: lib, nixpkgs, flake, outputs,
# mkPkgs, root), the home-manager source (or null), and the helpers the files share.
{
  lib,
  # The directory `lib` was imported from (nixpkgs.lib's lib/, or nixpkgs' own).
  libPath,
  # A home-manager source tree, or null.
  homeManager ? null,
}:
let
  stubs = import ./stubs.nix { inherit lib libPath; };
  inherit (stubs) outputs root;

  stub = stubs.nixpkgs.legacyPackages.x86_64-linux;
  cellPkg = outputs.packages.x86_64-linux.cell;

  # The NixOS module (the flake's nixosModules.default) under lib.evalModules, against
  # typed stand-ins of the NixOS options it sets (./nixos-options.nix) and the stubs.
  evalNixos =
    modules:
    lib.evalModules {
      modules = [
        ./nixos-options.nix
        outputs.nixosModules.default
        { _module.args.pkgs = stub; }
      ]
      ++ modules;
    };
  eval = modules: (evalNixos modules).config;
  # The NixOS config with `programs.cell = { enable = true; } // settings`.
  enabled =
    settings:
    eval [
      {
        programs.cell = {
          enable = true;
        }
        // settings;
      }
    ];
  # The messages of a config's failed assertions.
  failed = config: map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);

  # The shared cell library, with the stub packages (or others).
  cellLibWith = pkgs: import (root + "/modules/cell") { inherit lib pkgs; };
in
stubs
// {
  inherit
    homeManager
    stub
    cellPkg
    evalNixos
    eval
    enabled
    failed
    ;
  cellExe = "${cellPkg.outPath}/bin/cell";

  # A committed rendering of checks/golden, parsed.
  golden = name: builtins.fromJSON (builtins.readFile (root + "/checks/golden/${name}.json"));
  # Cells that use every option (checks/golden/full.json on NixOS).
  example = import ./example-cells.nix;

  # The messages of one cell's failed assertions, the cell being `programs.cell.cells.bad`.
  failsWith =
    cell:
    failed (enabled {
      cells.bad = cell;
    });
  # The JSON text the validated file copies: the writeText inside the runCommand.
  renderedJson = config: builtins.fromJSON config.programs.cell.configFile.json.text;
  # The command package of that name among `programs.cell.wrappers`, or null.
  wrapper = config: name: lib.findFirst (p: p.name == name) null config.programs.cell.wrappers;

  cellLib = cellLibWith stub;
  # `cells` (option definitions) evaluated as bare cells, as lib.mkCell does, and rendered
  # with no defaultCell; `pkgs` (default: the stubs) are the cells' packages.
  renderCells =
    {
      cells,
      pkgs ? stub,
    }:
    let
      cellLib = cellLibWith pkgs;
    in
    cellLib.render {
      cells =
        (lib.evalModules {
          modules = [
            {
              options.cells = lib.mkOption { type = lib.types.attrsOf cellLib.cellType; };
              config.cells = cells;
            }
          ];
        }).config.cells;
      defaultCell = null;
    };
}
