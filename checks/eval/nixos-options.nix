# Typed stand-ins for the NixOS options modules/nixos.nix sets, declared with the types
# NixOS itself uses (nixos/modules/system/etc/etc.nix, config/system-path.nix,
# misc/assertions.nix, config/users-groups.nix), so a wrong definition fails here as it would on a real system.
{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      internal = true;
      default = [ ];
      description = "As nixos/modules/misc/assertions.nix.";
    };
    warnings = mkOption {
      type = types.listOf types.str;
      internal = true;
      default = [ ];
      description = "As nixos/modules/misc/assertions.nix.";
    };
    users.users = mkOption {
      default = { };
      description = "As nixos/modules/config/users-groups.nix (the options the module sets).";
      type = types.attrsOf (
        types.submodule {
          options = {
            isSystemUser = mkOption {
              type = types.bool;
              default = false;
            };
            group = mkOption {
              type = types.str;
              default = "";
            };
            home = mkOption {
              type = types.passwdEntry types.path;
              default = "/var/empty";
            };
            createHome = mkOption {
              type = types.bool;
              default = false;
            };
            description = mkOption {
              type = types.passwdEntry types.str;
              default = "";
            };
            uid = mkOption {
              type = types.nullOr types.int;
              default = null;
            };
          };
        }
      );
    };
    users.groups = mkOption {
      default = { };
      description = "As nixos/modules/config/users-groups.nix.";
      type = types.attrsOf (
        types.submodule {
          options.gid = mkOption {
            type = types.nullOr types.int;
            default = null;
          };
        }
      );
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
      description = "As nixos/modules/config/system-path.nix.";
    };
    environment.etc = mkOption {
      default = { };
      description = "As nixos/modules/system/etc/etc.nix.";
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          {
            options = {
              enable = mkOption {
                type = types.bool;
                default = true;
              };
              target = mkOption {
                type = types.str;
                default = name;
              };
              text = mkOption {
                type = types.nullOr types.lines;
                default = null;
              };
              source = mkOption { type = types.path; };
              mode = mkOption {
                type = types.str;
                default = "symlink";
              };
              user = mkOption {
                type = types.str;
                default = "+0";
              };
              group = mkOption {
                type = types.str;
                default = "+0";
              };
            };
            config.source = lib.mkIf (config.text != null) (lib.mkDefault "text:${name}");
          }
        )
      );
    };
  };
}
