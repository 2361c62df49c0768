# The browser of a cell: `chromium`. Two things reach the JSON `cell` reads
# (./render.nix): `browser.command` (Chromium and its arguments, for `cell login`) and one
# MCP server entry; the rest is store paths (Chromium, the unpacked extensions, two
# launcher scripts) that a cell sees through its read-only /nix/store (`hostSystem`).
# The `cell-<name>-chromium` command that starts the in-cell launcher is in ./wrappers.nix.
#
# Enabled extensions (fetched by Nix, unpacked, refused at build time unless manifest.json
# sits at the root and declares manifest version 3: ../../pkgs/chromium-extension.nix)
# become `--load-extension=<csv>` and `--disable-extensions-except=<csv>`; both flags are
# absent when none is enabled. The one argument list feeds the interactive
# `cell-<name>-chromium` and the Playwright MCP server, which share the profile
# `$HOME/.config/chromium` in the cell's persistent home (the profile `cell-init`'s
# chromium-singleton fragment sweeps).
{
  config,
  lib,
  name,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkDefault
    mkEnableOption
    mkIf
    mkOption
    mkPackageOption
    optional
    types
    ;

  registry = import ../../pkgs/chromium-extensions.nix;

  mkExtension = import ../../pkgs/chromium-extension.nix {
    inherit lib;
    inherit (pkgs) runCommand fetchurl python3;
  };

  # The profile, relative to the cell's $HOME (cell-init sweeps its stale singleton files).
  profile = ".config/chromium";

  extensionNameRegex = "[A-Za-z0-9][A-Za-z0-9_.-]*";

  extensionModule =
    { name, config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = "Load this extension in the cell's Chromium and its browser MCP server.";
        };
        url = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = ''
            Where to fetch the extension (a `.zip` or `.crx` file), pinned to a release,
            never "latest". Needs `hash`. Mutually exclusive with `src`.
          '';
          example = "https://github.com/OWNER/EXT/releases/download/v1.2.3/ext-chrome.zip";
        };
        hash = mkOption {
          type = types.nullOr (types.strMatching "(sha256|sha512)-[A-Za-z0-9+/]+={0,2}");
          default = null;
          description = ''
            SRI hash of the file at `url`; get it with
            `nix store prefetch-file --json <url> | jq -r .hash`.
          '';
          example = "sha256-luDxNlNoLYHWG3EHuqXTAxAzqkYnDpZt7eFFbqwRQT8=";
        };
        src = mkOption {
          type = types.nullOr types.path;
          default = null;
          description = ''
            A local extension instead of `url`: a Nix path value (`./ext.crx`, copied into
            the store), a derivation, or a store path; a `.zip` or `.crx` file or an
            unpacked directory.
          '';
          example = literalExpression "./extensions/mine.zip";
        };
        package = mkOption {
          type = types.package;
          readOnly = true;
          description = "The unpacked extension directory (built from `url` and `hash`, or `src`).";
        };
      };
      config.package = mkExtension {
        inherit name;
        inherit (config) src url hash;
      };
    };

  cfg = config.chromium;
  enabled = lib.filterAttrs (_: e: e.enable) cfg.extensions;
  # By extension name (attribute order), so the flags do not change with store hashes.
  dirs = map (e: "${e.package}") (builtins.attrValues enabled);
  csv = lib.concatStringsSep "," dirs;
  chromiumExe = lib.getExe cfg.package;

  # Runs inside the cell, where $HOME is the cell's home. The browser, which may hold
  # the user's display, gets an empty home of its own in the cell's private /tmp: the
  # shared home is the agent's to write, and code could come from it (GTK modules named
  # in ~/.config/gtk-3.0, PKCS#11 modules in ~/.pki/nssdb). Only the profile is shared.
  launcher = pkgs.writeShellScript "cell-${name}-chromium-launcher" ''
    profile="$HOME/${profile}"
    export HOME=/tmp/cell-browser-home
    export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share" XDG_CACHE_HOME="$HOME/.cache"
    mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
    exec ${lib.escapeShellArg chromiumExe} --user-data-dir="$profile" --ozone-platform-hint=auto ${lib.escapeShellArgs cfg.args} "$@"
  '';

  # Playwright MCP's own config file: the browser arguments go in launchOptions.args
  # (the CLI has no option for them).
  mcpConfig = pkgs.writeText "cell-${name}-playwright-mcp.json" (
    builtins.toJSON {
      browser = {
        browserName = "chromium";
        launchOptions.args = cfg.args;
      };
    }
  );
  # nixpkgs' playwright-mcp turns isolated (in-memory) mode on unless the profile
  # comes in this variable; the option says the same for other builds.
  mcpLauncher = pkgs.writeShellScript "cell-${name}-playwright-mcp" ''
    export PLAYWRIGHT_MCP_USER_DATA_DIR="$HOME/${profile}"
    exec ${lib.escapeShellArgs cfg.mcp.command} --user-data-dir "$HOME/${profile}" ${
      lib.escapeShellArgs (
        [
          "--executable-path"
          chromiumExe
          "--config"
          "${mcpConfig}"
        ]
        ++ cfg.mcp.extraArgs
      )
    } "$@"
  '';
in
{
  options.chromium = {
    enable = mkEnableOption "Chromium in this cell: a `cell-<name>-chromium` command and, with `chromium.mcp.enable`, a browser MCP server, both on the profile `~/.config/chromium` of the cell's home";

    package = mkPackageOption pkgs "chromium" {
      extraDescription = ''
        Chromium, not Google Chrome: branded Chrome 137 and later ignores
        `--load-extension`.
      '';
    };

    extensions = mkOption {
      type = types.attrsOf (types.submodule extensionModule);
      default = { };
      description = ''
        Extensions by name. The registry (`pkgs/chromium-extensions.nix`: `capsolver`)
        is merged in, disabled; enable an entry with `enable = true`. Each is fetched
        with its SRI hash (or taken from `src`), unpacked (zip or crx) and refused at
        build time unless `manifest.json` is at its root and declares manifest
        version 3.
      '';
      example = literalExpression ''
        {
          capsolver.enable = true;
          mine = { src = ./mine.crx; enable = true; };
        }
      '';
    };

    noSandbox = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Pass `--no-sandbox`. Chromium's own sandbox needs user namespaces or a setuid
        helper, and a cell offers neither (no nested user namespaces, `no_new_privs`);
        the cell is the sandbox. Turn off only for a Chromium that runs without it.
      '';
    };

    extraFlags = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "More Chromium arguments, for the interactive browser and the MCP server alike.";
      example = [
        "--headless=new"
        "--window-size=1920,1040"
      ];
    };

    flags = mkOption {
      type = types.listOf types.str;
      readOnly = true;
      description = ''
        The extension flags: `--load-extension=<dirs>` and
        `--disable-extensions-except=<dirs>` (the enabled extensions' store paths,
        comma-separated, by name), or nothing when none is enabled.
      '';
    };

    args = mkOption {
      type = types.listOf types.str;
      readOnly = true;
      description = "Every Chromium argument but the profile: `--no-sandbox`, `flags`, `extraFlags`.";
    };

    command = mkOption {
      type = types.listOf types.str;
      readOnly = true;
      description = ''
        Chromium and `args`, without the profile: the cell's `browser.command`, which
        `cell login` runs inside the cell on the profile `~/.config/chromium`.
      '';
    };

    launcher = mkOption {
      type = types.package;
      readOnly = true;
      internal = true;
      description = "The script `cell-<name>-chromium` runs inside the cell.";
    };

    mcp = {
      enable = mkEnableOption "a Playwright MCP server (`mcp.servers.playwright`) driving this Chromium, with the same extensions and profile";
      command = mkOption {
        type = types.nonEmptyListOf types.str;
        default = [ (lib.getExe pkgs.playwright-mcp) ];
        defaultText = literalExpression "[ (lib.getExe pkgs.playwright-mcp) ]";
        description = ''
          The Playwright MCP program (`@playwright/mcp`). `[ "npx" "@playwright/mcp@<version>" ]`
          works too when the cell has Node.js and may reach `registry.npmjs.org`.
        '';
        example = [
          "npx"
          "@playwright/mcp@0.0.41"
        ];
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "More `@playwright/mcp` options (`--headless`, `--caps=pdf`, ...).";
        example = [ "--headless" ];
      };
      launcher = mkOption {
        type = types.package;
        readOnly = true;
        internal = true;
        description = "The server's command: Playwright MCP on the cell's profile, run inside the cell.";
      };
      configFile = mkOption {
        type = types.package;
        readOnly = true;
        internal = true;
        description = "Playwright MCP's config file: Chromium's arguments as `browser.launchOptions.args`.";
      };
    };
  };

  config = {
    chromium = {
      extensions = lib.mapAttrs (_: lib.mapAttrs (_: mkDefault)) registry;
      flags = lib.optionals (dirs != [ ]) [
        "--load-extension=${csv}"
        "--disable-extensions-except=${csv}"
      ];
      args = optional cfg.noSandbox "--no-sandbox" ++ cfg.flags ++ cfg.extraFlags;
      command = [ chromiumExe ] ++ cfg.args;
      inherit launcher;
      mcp = {
        launcher = mcpLauncher;
        configFile = mcpConfig;
      };
    };
    mcp.servers = mkIf (cfg.enable && cfg.mcp.enable) {
      playwright.command = "${mcpLauncher}";
    };

    # `at` is the cell's option path, e.g. "programs.cell.cells.claude".
    assertions.browser =
      at:
      let
        storeBound = config.hostSystem || builtins.any (b: b.src == "/nix/store") config.binds;
      in
      lib.optionals cfg.enable [
        {
          assertion = storeBound;
          message = "${at}.chromium.enable needs the Nix store inside the cell (Chromium, its extensions and launchers live there): keep ${at}.hostSystem = true (the default) or add { src = \"/nix/store\"; } to ${at}.binds.";
        }
      ]
      ++ lib.optionals cfg.mcp.enable [
        {
          assertion = cfg.enable;
          message = "${at}.chromium.mcp.enable needs ${at}.chromium.enable = true.";
        }
      ]
      ++ lib.concatLists (
        lib.mapAttrsToList (
          ename: e:
          let
            eat = "${at}.chromium.extensions.${ename}";
          in
          [
            {
              assertion = builtins.match extensionNameRegex ename != null;
              message = "${eat}: the extension name \"${ename}\" must be letters, digits, `.`, `-` and `_`, starting with a letter or digit; rename the attribute.";
            }
            {
              assertion = (e.url == null) != (e.src == null);
              message = "${eat}: set exactly one of ${eat}.url (with ${eat}.hash) or ${eat}.src.";
            }
            {
              assertion = e.url == null || e.hash != null;
              message = "${eat}.hash must be set with ${eat}.url: an SRI hash such as \"sha256-…\", from `nix store prefetch-file --json <url> | jq -r .hash`.";
            }
            {
              assertion = e.hash == null || e.url != null;
              message = "${eat}.hash is only for ${eat}.url; remove it or set the url.";
            }
            {
              assertion =
                e.src == null
                || builtins.isPath e.src
                || lib.isDerivation e.src
                || lib.hasPrefix "${builtins.storeDir}/" (toString e.src);
              message = "${eat}.src must be a Nix path value (./ext.zip, no quotes), a derivation or a store path, so the build can read it; got the string \"${toString e.src}\".";
            }
          ]
        ) (if cfg.enable then cfg.extensions else { })
      );
  };
}
