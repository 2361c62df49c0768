# lib.mkCell: a package whose binary runs one command in a cell. The cell is rendered
# into the store (validated like the modules' files) and launched with
# `cell --config <file> run --cell <name> [extraArgs] -- <command> "$@"`.
#
#   mkCell {
#     inherit pkgs;
#     name = "test-in-cell";
#     command = [ "make" "check" ];
#     allow = [ "github.com" ];
#     cell.limits.memory = "4G";   # any option of programs.cell.cells.<name>
#   }
{
  pkgs,
  cell,
  name,
  command,
  # Host directory bound read-write as the worktree; null: the current directory.
  worktreePath ? null,
  # Extra `cell run` options, before the `--` (e.g. [ "--bind" "/srv/data:ro" ]).
  extraArgs ? [ ],
  # network.allow; non-empty turns the egress proxy on.
  allow ? [ ],
  # Host directory bound read-write at the same path, for the command's logs.
  logDir ? null,
  # Host directory holding the Nix daemon's socket: enables nixDaemon (see its option:
  # this bypasses the egress proxy).
  nixDaemonSocket ? null,
  # Any further options of the shared cell submodule (modules/cell).
  cellConfig ? { },
  # Name of the cell inside the rendered file.
  cellName ? "default",
  validate ? pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform,
}:
let
  inherit (pkgs) lib;
  cellLib = import ../modules/cell { inherit lib pkgs; };

  evaluated = lib.evalModules {
    modules = [
      {
        options.cells = lib.mkOption { type = lib.types.attrsOf cellLib.cellType; };
        config.cells.${cellName} = lib.mkMerge [
          {
            command = map toString commandList;
            worktree.path = worktreePath;
            network.allow = allow;
            binds = lib.optional (logDir != null) {
              src = logDir;
              mode = "rw";
            };
            wrapper = false;
          }
          (lib.optionalAttrs (nixDaemonSocket != null) {
            nixDaemon = {
              enable = true;
              socket = nixDaemonSocket;
            };
          })
          cellConfig
        ];
      }
    ];
  };
  settings = evaluated.config.cells.${cellName};

  failed = map (a: a.message) (
    builtins.filter (a: !a.assertion) (
      cellLib.assertions {
        prefix = "mkCell { name = \"${name}\"; }: cells";
        inherit (evaluated.config) cells;
        defaultCell = null;
        defaultCellOption = "defaultCell";
      }
    )
  );

  commandList = if builtins.isList command then command else [ command ];

  document = cellLib.render {
    inherit (evaluated.config) cells;
    defaultCell = cellName;
  };

  configFile = cellLib.configFile {
    inherit cell document validate;
    name = "${name}-cell.json";
  };

  argv =
    cellLib.launchArgv {
      inherit cell configFile settings;
      name = cellName;
      systemdRun = "systemd-run";
      subcommand = "run";
    }
    ++ extraArgs
    ++ [ "--" ]
    ++ map toString commandList;
in
if failed != [ ] then
  throw "lib.mkCell:\n${lib.concatMapStrings (m: "- ${m}\n") failed}"
else
  (pkgs.writeShellScriptBin name ''
    exec ${lib.escapeShellArgs argv} "$@"
  '').overrideAttrs
    (old: {
      passthru = (old.passthru or { }) // {
        inherit argv configFile document;
      };
      meta = (old.meta or { }) // {
        mainProgram = name;
        description = "Runs ${toString commandList} in a cell";
      };
    })
