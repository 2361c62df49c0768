# Known Chromium extensions, merged (with `lib.mkDefault`, all disabled) into every cell's
# `chromium.extensions`; enable one with `chromium.extensions.<name>.enable = true`.
#
# Policy: never vendor archives; the url pins a release tag (never "latest"); the hash is
# an SRI sha256 of that exact file. To bump: change the url, then
#   nix store prefetch-file --json <url> | jq -r .hash
# (or `nix-prefetch-url <url>` and `nix hash to-sri --type sha256 <hash>`).
{
  # CapSolver (CAPTCHA solving), from its official GitHub releases. The release tag is
  # spelled `v.1.17.0` (with a dot) and the asset `CapSolver.Browser.Extension-chrome-v1.17.0.zip`,
  # as several unrelated public projects download it; the hash is devcell's, not
  # recomputed when this entry was written (nothing was downloaded).
  capsolver = {
    url = "https://github.com/capsolver/capsolver-browser-extension/releases/download/v.1.17.0/CapSolver.Browser.Extension-chrome-v1.17.0.zip";
    hash = "sha256-luDxNlNoLYHWG3EHuqXTAxAzqkYnDpZt7eFFbqwRQT8=";
    enable = false;
  };
}
