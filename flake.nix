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

      # The flake's cell for the system a module or mkCell is evaluated for.
      cellFor =
        system:
        self.packages.${system}.cell
          or (throw "cell is packaged for ${lib.concatStringsSep " and " systems}, not ${system}");

      # Sets the module's package to this flake's (users can still override it).
      withPackage =
        module:
        { pkgs, ... }:
        {
          imports = [ module ];
          programs.cell.package = lib.mkDefault (cellFor pkgs.stdenv.hostPlatform.system);
        };
    in
    {
      overlays.default = final: _prev: { cell = final.callPackage ./pkgs/cell.nix { }; };

      packages = forAllSystems (
        { pkgs, system }:
        let
          cell = pkgs.callPackage ./pkgs/cell.nix { };
          # nixpkgs marks claude-code unfree: allow exactly that package, for this default.
          agentPkgs = import nixpkgs {
            inherit system;
            config.allowUnfreePredicate = pkg: lib.getName pkg == "claude-code";
          };
        in
        {
          inherit cell;
          default = cell;
          cell-with-agents = agentPkgs.callPackage ./pkgs/cell-with-agents.nix { inherit cell; };
        }
      );

      apps = forAllSystems (
        { system, ... }:
        let
          cell = {
            type = "app";
            program = "${self.packages.${system}.cell-with-agents}/bin/cell";
            meta.description = "Run a command or an AI coding agent in a cell";
          };
        in
        {
          inherit cell;
          default = cell;
        }
      );

      nixosModules.default = withPackage (import ./modules/nixos.nix);
      homeManagerModules.default = withPackage (import ./modules/home-manager.nix);

      lib.mkCell =
        args: import ./pkgs/mk-cell.nix ({ cell = cellFor args.pkgs.stdenv.hostPlatform.system; } // args);

      formatter = forAllSystems ({ pkgs, ... }: pkgs.nixfmt);

      checks = forAllSystems (
        { system, pkgs }:
        import ./checks {
          inherit pkgs;
          cell = self.packages.${system}.cell;
          modules = {
            nixos = self.nixosModules.default;
            inherit (self.lib) mkCell;
          };
        }
      );
    };
}
