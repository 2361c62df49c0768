# A cell configuration rendered by the modules' chromium options, for the browser tests in
# rust/cell/tests/it/browser.rs: the stub packages of ./eval/stubs.nix, except that
# Chromium and the unpacked extensions are directories of the test machine, standing where
# a real build would have put them. So the flags under test are the ones the module
# computes, and the browser that reads them is a real Chromium.
#
#   nix-instantiate --eval --strict --json checks/browser-config.nix \
#     --arg libPath <nixpkgs.lib>/lib --argstr chromium <dir with bin/chromium> \
#     --arg extensions '{ mine = "/abs/unpacked"; }' --arg enabled '[ "mine" ]' \
#     --argstr home <cell home>
{
  libPath,
  # A directory with bin/chromium.
  chromium,
  # Unpacked extensions by name (the output of pkgs/unpack-extension.py).
  extensions ? { },
  # The names to enable.
  enabled ? [ ],
  # The cell's home directory on the host.
  home,
}:
let
  lib = import libPath;
  inherit (import ./eval/common.nix { inherit lib libPath; }) stub renderCells;
  pkgs = stub // {
    chromium = {
      type = "derivation";
      name = "chromium";
      outPath = chromium;
      meta.mainProgram = "chromium";
    };
    # The extension builds: the given directories.
    runCommand =
      name: env: script:
      let
        ext = lib.removePrefix "chromium-extension-" name;
      in
      if extensions ? ${ext} then
        {
          type = "derivation";
          inherit name;
          outPath = extensions.${ext};
        }
      else
        stub.runCommand name env script;
  };
in
renderCells {
  inherit pkgs;
  cells.web = {
    home.path = home;
    chromium = {
      enable = true;
      extensions = lib.mapAttrs (name: _: {
        src = "/nix/store/00000000000000000000000000000000-${name}";
        enable = builtins.elem name enabled;
      }) extensions;
    };
  };
}
