{
  description = "Declarative bubblewrap sandboxes for AI coding agents";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems =
        f:
        lib.genAttrs systems (
          system:
          f {
            inherit system;
            pkgs = nixpkgs.legacyPackages.${system};
          }
        );
    in
    {
      overlays.default = final: _prev: { cell = final.callPackage ./pkgs/cell.nix { }; };

      packages = forAllSystems (
        { pkgs, ... }:
        let
          cell = pkgs.callPackage ./pkgs/cell.nix { };
        in
        {
          inherit cell;
          default = cell;
        }
      );

      apps = forAllSystems (
        { system, ... }:
        let
          cell = {
            type = "app";
            program = "${self.packages.${system}.cell}/bin/cell";
            meta.description = "Run a command or an AI coding agent in a cell";
          };
        in
        {
          inherit cell;
          default = cell;
        }
      );

      formatter = forAllSystems ({ pkgs, ... }: pkgs.nixfmt);

      checks = forAllSystems (
        { system, pkgs }:
        import ./checks {
          inherit pkgs;
          cell = self.packages.${system}.cell;
        }
      );
    };
}
