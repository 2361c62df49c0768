# A Chromium extension as an unpacked directory, ready for `--load-extension`:
#
#   mkExtension { name = "capsolver"; url = "https://…/ext.zip"; hash = "sha256-…"; }
#   mkExtension { name = "mine"; src = ./mine.crx; }   # a local file, directory or derivation
#
# The archive (zip, CRX2 or CRX3) is fetched with its SRI hash and unpacked by
# ./unpack-extension.py, which fails the build, naming the extension and the problem,
# unless manifest.json sits at the root and declares manifest version 3.
{
  lib,
  runCommand,
  fetchurl,
  python3,
}:
{
  name,
  src ? null,
  url ? null,
  hash ? null,
}:
let
  archive =
    if src != null then
      src
    else if url != null && hash != null then
      fetchurl {
        inherit url hash;
        name = "chromium-extension-${name}-archive";
      }
    else
      throw "chromium extension ${name}: give `src`, or `url` together with `hash` (an SRI hash such as \"sha256-…\")";
in
runCommand "chromium-extension-${name}"
  {
    inherit archive;
    nativeBuildInputs = [ python3 ];
    passthru = {
      extensionName = name;
      inherit archive;
    };
    meta.description = "The Chromium extension ${name}, unpacked";
  }
  ''
    python3 ${./unpack-extension.py} ${lib.escapeShellArg name} "$archive" "$out"
  ''
