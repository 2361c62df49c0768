# `cells.<name>.chromium` (modules/cell/browser.nix) through the NixOS module with the stub
# packages: the extension flags, the registry, the extension derivations, the
# `cell-<name>-chromium` wrapper and its in-cell launcher, the Playwright MCP server entry
# and the assertions.
{
  lib,
  root,
  stub,
  cellPkg,
  cellExe,
  enabled,
  failed,
  failsWith,
  renderedJson,
  wrapper,
  ...
}:
let
  chromiumExe = "${stub.chromium.outPath}/bin/chromium";
  registry = import (root + "/pkgs/chromium-extensions.nix");

  # The NixOS config with these cells.
  withCells = cells: enabled { inherit cells; };
  cellOf = cell: (withCells { web = cell; }).programs.cell.cells.web;

  # A local extension given as a derivation.
  localExt = stub.writeText "mine.crx" "";

  two = cellOf {
    chromium = {
      enable = true;
      extensions = {
        capsolver.enable = true;
        mine = {
          src = localExt;
          enable = true;
        };
        off.src = localExt;
      };
    };
  };
  dir = name: two.chromium.extensions.${name}.package.outPath;
  csv = "${dir "capsolver"},${dir "mine"}";

  web = withCells {
    web = {
      chromium = {
        enable = true;
        extensions.capsolver.enable = true;
        extraFlags = [ "--headless=new" ];
        mcp.enable = true;
      };
      limits.memory = "2G";
    };
  };
  webCell = web.programs.cell.cells.web;
  cfgPath = web.programs.cell.configFile.outPath;
  capsolverDir = webCell.chromium.extensions.capsolver.package.outPath;
  webArgs = [
    "--no-sandbox"
    "--load-extension=${capsolverDir}"
    "--disable-extensions-except=${capsolverDir}"
    "--headless=new"
  ];
in
{
  testChromiumNoFlagsWhenNoExtensionIsEnabled = {
    expr =
      let
        c = cellOf { chromium.enable = true; };
      in
      {
        inherit (c.chromium) flags args;
        launcher = c.chromium.launcher.text;
      };
    expected = {
      flags = [ ];
      args = [ "--no-sandbox" ];
      launcher = ''
        profile="$HOME/.config/chromium"
        export HOME=/tmp/cell-browser-home
        export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share" XDG_CACHE_HOME="$HOME/.cache"
        mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
        exec ${chromiumExe} --user-data-dir="$profile" --ozone-platform-hint=auto --no-sandbox "$@"
      '';
    };
  };

  testChromiumFlagsNameExactlyTheEnabledExtensionsByName = {
    expr = two.chromium.flags;
    expected = [
      "--load-extension=${csv}"
      "--disable-extensions-except=${csv}"
    ];
  };

  testChromiumNoSandboxCanBeTurnedOff = {
    expr =
      (cellOf {
        chromium = {
          enable = true;
          noSandbox = false;
        };
      }).chromium.args;
    expected = [ ];
  };

  testChromiumRegistryHasCapsolverDisabled = {
    expr = {
      file = registry;
      cell = lib.filterAttrs (
        k: _:
        builtins.elem k [
          "url"
          "hash"
          "enable"
          "src"
        ]
      ) (cellOf { }).chromium.extensions.capsolver;
    };
    expected = {
      file.capsolver = {
        url = "https://github.com/capsolver/capsolver-browser-extension/releases/download/v.1.17.0/CapSolver.Browser.Extension-chrome-v1.17.0.zip";
        hash = "sha256-luDxNlNoLYHWG3EHuqXTAxAzqkYnDpZt7eFFbqwRQT8=";
        enable = false;
      };
      cell = {
        inherit (registry.capsolver) url hash;
        enable = false;
        src = null;
      };
    };
  };

  # Enabling a registry entry keeps its url and hash; a user's own url replaces them.
  testChromiumRegistryEntriesMergeWithTheUsers = {
    expr =
      let
        ext =
          (cellOf { chromium.extensions.capsolver.url = "https://example.test/c.zip"; })
          .chromium.extensions.capsolver;
      in
      {
        enabled = two.chromium.extensions.capsolver.url == registry.capsolver.url;
        inherit (ext) url hash enable;
      };
    expected = {
      enabled = true;
      url = "https://example.test/c.zip";
      inherit (registry.capsolver) hash;
      enable = false;
    };
  };

  # Fetched with the SRI hash, then unpacked and checked by the committed script.
  testChromiumExtensionIsFetchedAndUnpacked = {
    expr =
      let
        p = two.chromium.extensions.capsolver.package;
      in
      {
        inherit (p) name extensionName;
        archive = {
          inherit (p.archive)
            name
            url
            hash
            builder
            ;
        };
        tools = map (t: t.name) p.nativeBuildInputs;
        inherit (p) script;
      };
    expected = {
      name = "chromium-extension-capsolver";
      extensionName = "capsolver";
      archive = {
        name = "chromium-extension-capsolver-archive";
        inherit (registry.capsolver) url hash;
        builder = "fetchurl";
      };
      tools = [ "python3" ];
      script = ''
        python3 ${root + "/pkgs/unpack-extension.py"} capsolver "$archive" "$out"
      '';
    };
  };

  testChromiumLocalExtensionIsNotFetched = {
    expr = two.chromium.extensions.mine.package.archive == localExt;
    expected = true;
  };

  testChromiumExtensionFunctionRefusesNoSource = {
    expr =
      let
        mk = import (root + "/pkgs/chromium-extension.nix") {
          inherit lib;
          inherit (stub) runCommand fetchurl python3;
        };
      in
      (builtins.tryEval (mk { name = "x"; }).archive).success;
    expected = false;
  };

  # The wrapper launches the cell like cell-web (limits included), then the in-cell
  # launcher, which puts the profile in the cell's own $HOME.
  testChromiumWrapperAndLauncher = {
    expr = {
      wrapper = (wrapper web "cell-web-chromium").text;
      launcher = webCell.chromium.launcher.text;
      packages = map (p: p.name) web.environment.systemPackages;
      noAssertions = failed web;
    };
    expected = {
      wrapper = ''
        exec ${stub.systemd.outPath}/bin/systemd-run --user --scope --quiet --collect -p 'Delegate=yes' -- ${cellExe} --config ${cfgPath} run --cell web --display "''${CELL_DISPLAY:-auto}" -- ${webCell.chromium.launcher.outPath} "$@"
      '';
      launcher = ''
        profile="$HOME/.config/chromium"
        export HOME=/tmp/cell-browser-home
        export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share" XDG_CACHE_HOME="$HOME/.cache"
        mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
        exec ${chromiumExe} --user-data-dir="$profile" --ozone-platform-hint=auto ${lib.escapeShellArgs webArgs} "$@"
      '';
      packages = [
        cellPkg.name
        "cell-web"
        "cell-web-chromium"
      ];
      noAssertions = [ ];
    };
  };

  testChromiumNoWrapperWithoutEnableOrWithWrapperOff = {
    expr =
      map (p: p.name)
        (withCells {
          a.chromium.mcp.command = [ "x" ];
          b = {
            wrapper = false;
            chromium.enable = true;
          };
        }).programs.cell.wrappers;
    expected = [ "cell-a" ];
  };

  # The MCP server is the only trace in the JSON: a stdio server whose command is a store
  # script running Playwright MCP on the same profile, Chromium and arguments.
  testChromiumMcpServerEntry = {
    expr = {
      servers = (renderedJson web).cells.web.mcp.servers;
      launcher = webCell.chromium.mcp.launcher.text;
      config = builtins.fromJSON webCell.chromium.mcp.configFile.text;
    };
    expected = {
      servers.playwright.command = webCell.chromium.mcp.launcher.outPath;
      launcher = ''
        export PLAYWRIGHT_MCP_USER_DATA_DIR="$HOME/.config/chromium"
        exec ${stub.playwright-mcp.outPath}/bin/playwright-mcp --user-data-dir "$HOME/.config/chromium" --executable-path ${chromiumExe} --config ${webCell.chromium.mcp.configFile.outPath} "$@"
      '';
      # The same list as the interactive browser's.
      config.browser = {
        browserName = "chromium";
        launchOptions.args = webArgs;
      };
    };
  };

  testChromiumMcpWithNpxAndExtraArgs = {
    expr =
      let
        c = cellOf {
          chromium = {
            enable = true;
            noSandbox = false;
            mcp = {
              enable = true;
              command = [
                "npx"
                "@playwright/mcp@0.0.41"
              ];
              extraArgs = [ "--headless" ];
            };
          };
        };
      in
      lib.hasInfix "\nexec npx @playwright/mcp@0.0.41 --user-data-dir \"$HOME/.config/chromium\" --executable-path ${chromiumExe} --config " c.chromium.mcp.launcher.text
      && lib.hasSuffix " --headless \"$@\"\n" c.chromium.mcp.launcher.text;
    expected = true;
  };

  testChromiumMcpOffAddsNoServer = {
    expr =
      (renderedJson (withCells {
        web.chromium.enable = true;
      })).cells.web
        ? mcp;
    expected = false;
  };

  testChromiumAssertExtensionSources = {
    expr = failsWith {
      chromium = {
        enable = true;
        extensions = {
          neither.enable = true;
          nohash.url = "https://example.test/x.zip";
          both = {
            url = "https://example.test/x.zip";
            hash = registry.capsolver.hash;
            src = localExt;
          };
          hashonly.hash = registry.capsolver.hash;
          string.src = "/home/alice/ext.zip";
          "bad name".src = localExt;
        };
      };
    };
    expected = [
      "programs.cell.cells.bad.chromium.extensions.bad name: the extension name \"bad name\" must be letters, digits, `.`, `-` and `_`, starting with a letter or digit; rename the attribute."
      "programs.cell.cells.bad.chromium.extensions.both: set exactly one of programs.cell.cells.bad.chromium.extensions.both.url (with programs.cell.cells.bad.chromium.extensions.both.hash) or programs.cell.cells.bad.chromium.extensions.both.src."
      "programs.cell.cells.bad.chromium.extensions.hashonly: set exactly one of programs.cell.cells.bad.chromium.extensions.hashonly.url (with programs.cell.cells.bad.chromium.extensions.hashonly.hash) or programs.cell.cells.bad.chromium.extensions.hashonly.src."
      "programs.cell.cells.bad.chromium.extensions.hashonly.hash is only for programs.cell.cells.bad.chromium.extensions.hashonly.url; remove it or set the url."
      "programs.cell.cells.bad.chromium.extensions.neither: set exactly one of programs.cell.cells.bad.chromium.extensions.neither.url (with programs.cell.cells.bad.chromium.extensions.neither.hash) or programs.cell.cells.bad.chromium.extensions.neither.src."
      "programs.cell.cells.bad.chromium.extensions.nohash.hash must be set with programs.cell.cells.bad.chromium.extensions.nohash.url: an SRI hash such as \"sha256-…\", from `nix store prefetch-file --json <url> | jq -r .hash`."
      "programs.cell.cells.bad.chromium.extensions.string.src must be a Nix path value (./ext.zip, no quotes), a derivation or a store path, so the build can read it; got the string \"/home/alice/ext.zip\"."
    ];
  };

  testChromiumAssertMcpNeedsChromiumAndTheStore = {
    expr =
      failsWith {
        hostSystem = false;
        chromium = {
          enable = true;
          mcp.enable = true;
        };
      }
      ++ failsWith { chromium.mcp.enable = true; }
      ++ failsWith {
        hostSystem = false;
        binds = [ { src = "/nix/store"; } ];
        chromium.enable = true;
      };
    expected = [
      "programs.cell.cells.bad.chromium.enable needs the Nix store inside the cell (Chromium, its extensions and launchers live there): keep programs.cell.cells.bad.hostSystem = true (the default) or add { src = \"/nix/store\"; } to programs.cell.cells.bad.binds."
      "programs.cell.cells.bad.chromium.mcp.enable needs programs.cell.cells.bad.chromium.enable = true."
    ];
  };

  # Extensions of a cell without Chromium are never looked at.
  testChromiumDisabledIgnoresExtensions = {
    expr = failsWith { chromium.extensions.x.enable = true; };
    expected = [ ];
  };

  testChromiumHashMustBeSri = {
    expr =
      map
        (
          hash:
          (builtins.tryEval (
            builtins.deepSeq (cellOf { chromium.extensions.x = { inherit hash; }; }).chromium.extensions.x.hash
              true
          )).success
        )
        [
          "0123abcd"
          "md5-AAAA"
          registry.capsolver.hash
        ];
    expected = [
      false
      false
      true
    ];
  };
}
