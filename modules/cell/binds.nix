# What else of the host a cell sees: the system directories (`hostSystem`) and `binds`.
{ config, lib, ... }:
let
  inherit (lib) literalExpression mkOption types;
  inherit (import ./lib.nix { inherit lib; }) absolute absoluteIfSet pathStr;

  bindModule = {
    options = {
      src = mkOption {
        type = pathStr;
        description = "Absolute host path.";
        example = "/home/alice/.gitconfig";
      };
      dst = mkOption {
        type = types.nullOr pathStr;
        default = null;
        description = "Absolute path inside the cell. `null` means the same as `src`.";
        example = "/home/cell/.gitconfig";
      };
      mode = mkOption {
        type = types.enum [
          "ro"
          "rw"
        ];
        default = "ro";
        description = "`ro` (read-only) or `rw` (read-write).";
      };
      optional = mkOption {
        type = types.bool;
        default = false;
        description = "Skip the bind silently when `src` does not exist (otherwise the launch fails).";
      };
    };
  };

  # Where cell mounts things of its own; a bind must not replace them.
  reserved = [
    "/proc"
    "/dev"
    "/run/cell"
  ];
  replacesReserved =
    dst:
    let
      d = lib.removeSuffix "/" dst;
    in
    builtins.elem d ([ "" ] ++ reserved) || builtins.any (r: lib.hasPrefix "${r}/" d) reserved;
in
{
  options = {
    hostSystem = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Bind the host's system directories read-only (`/usr`, `/bin`, `/lib*`,
        certificates, `/nix/store`, `/run/current-system`, ...). Turn off when `binds`
        names everything the cell needs.
      '';
    };

    binds = mkOption {
      type = types.listOf (types.submodule bindModule);
      default = [ ];
      description = "Extra host paths made visible inside the cell.";
      example = literalExpression ''
        [
          { src = "/home/alice/.gitconfig"; }
          { src = "/srv/data"; dst = "/data"; mode = "rw"; }
        ]
      '';
    };
  };

  config.assertions.binds =
    at:
    lib.concatLists (
      lib.imap0 (
        i: b:
        let
          dst = if b.dst == null then b.src else b.dst;
        in
        [ (absolute at "binds.[${toString i}].src" b.src) ]
        ++ absoluteIfSet at "binds.[${toString i}].dst" b.dst
        ++ [
          {
            assertion = !(replacesReserved dst);
            message = "${at}.binds.[${toString i}] would replace \"${dst}\", which cell manages itself (`/`, `/proc`, `/dev`, `/run/cell`); bind it somewhere else with `dst`.";
          }
        ]
      ) config.binds
    );
}
