#!/usr/bin/env bash
# Runs pkgs/unpack-extension.py (the build step of pkgs/chromium-extension.nix) on small
# zip and CRX files made here with python3, and checks what it accepts, what it refuses
# and the message it refuses with. Needs python3 only. Exits non-zero on any failure.
# Run by scripts/nix-check and by the flake's `extension-unpack` check, which names the
# script to test in $UNPACK_EXTENSION (there is no git checkout in a build).
set -euo pipefail

unpack=${UNPACK_EXTENSION:-$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)/pkgs/unpack-extension.py}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# make KIND FILE [NAME=CONTENT]...: a zip of the given files, wrapped in a CRX header for
# kind crx2 or crx3.
make() {
  python3 - "$@" <<'PY'
import io, struct, sys, zipfile
kind, path, *entries = sys.argv[1:]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    for e in entries:
        name, _, content = e.partition("=")
        z.writestr(name, content)
data = buf.getvalue()
if kind == "crx3":
    header = b"\x12\x00fake-signed-header"
    data = b"Cr24" + struct.pack("<II", 3, len(header)) + header + data
elif kind == "crx2":
    key, sig = b"K" * 7, b"S" * 5
    data = b"Cr24" + struct.pack("<III", 2, len(key), len(sig)) + key + sig + data
elif kind == "text":
    data = b"<html>Not Found</html>"
elif kind == "crx4":
    data = b"Cr24" + struct.pack("<II", 4, 0) + data
open(path, "wb").write(data)
PY
}

mv3='manifest.json={"manifest_version": 3, "name": "t", "version": "1.0"}'
mv2='manifest.json={"manifest_version": 2, "name": "t", "version": "1.0"}'

make zip "$tmp/mv3.zip" "$mv3" "js/background.js=1"
make zip "$tmp/nested.zip" "capsolver/$mv3" "capsolver/js/a.js=1"
make zip "$tmp/mv2.zip" "$mv2"
make zip "$tmp/none.zip" "readme.txt=hi"
make zip "$tmp/badjson.zip" "manifest.json={not json"
make zip "$tmp/noversion.zip" 'manifest.json={"name": "t"}'
make zip "$tmp/strversion.zip" 'manifest.json={"manifest_version": "3"}'
make zip "$tmp/slip.zip" "$mv3" "../evil=1"
make crx3 "$tmp/mv3.crx" "$mv3" "js/background.js=1"
make crx2 "$tmp/mv3-v2.crx" "$mv3"
make crx3 "$tmp/mv2.crx" "$mv2"
make crx4 "$tmp/v4.crx" "$mv3"
make text "$tmp/page.zip"
mkdir -p "$tmp/dir/js"
echo '{"manifest_version": 3, "name": "d"}' >"$tmp/dir/manifest.json"
echo 1 >"$tmp/dir/js/a.js"

passed=0
failed=0
n=0
fail() {
  echo "FAIL $1: $2" >&2
  failed=$((failed + 1))
}

# ok LABEL SRC: accepted, manifest.json at the root of the output, and FILES present.
ok() {
  local label=$1 src=$2 out rc=0 err
  shift 2
  n=$((n + 1))
  out=$tmp/out$n
  err=$(python3 "$unpack" ext "$src" "$out" 2>&1) || rc=$?
  if [ "$rc" != 0 ]; then
    fail "$label" "exit $rc: $err"
    return
  fi
  local f
  for f in manifest.json "$@"; do
    if [ ! -f "$out/$f" ]; then
      fail "$label" "$f missing from the output"
      return
    fi
  done
  echo "PASS $label"
  passed=$((passed + 1))
}

# refused LABEL SRC MESSAGE: exit 1, exactly MESSAGE on stderr, no output left behind.
refused() {
  local label=$1 src=$2 want=$3 out rc=0 err
  n=$((n + 1))
  out=$tmp/out$n
  err=$(python3 "$unpack" capsolver "$src" "$out" 2>&1) || rc=$?
  if [ "$rc" != 1 ]; then
    fail "$label" "expected exit 1, got $rc ($err)"
  elif [ "$err" != "$want" ]; then
    fail "$label" "expected message: $want"$'\n'"  got: $err"
  elif [ -e "$out" ]; then
    fail "$label" "the output directory was left behind"
  else
    echo "PASS $label"
    passed=$((passed + 1))
  fi
}

ok "zip with an MV3 manifest at the root" "$tmp/mv3.zip" js/background.js
ok "CRX3 with a zip payload" "$tmp/mv3.crx" js/background.js
ok "CRX2 with a zip payload" "$tmp/mv3-v2.crx"
ok "an unpacked directory" "$tmp/dir" js/a.js

refused "manifest in a subdirectory" "$tmp/nested.zip" \
  "extension capsolver: manifest.json is not at the archive's root (found at capsolver/manifest.json); Chromium loads only a directory with manifest.json at its top"
refused "manifest version 2" "$tmp/mv2.zip" \
  "extension capsolver: manifest_version is 2; current Chromium loads only manifest version 3 extensions"
refused "CRX3 with manifest version 2" "$tmp/mv2.crx" \
  "extension capsolver: manifest_version is 2; current Chromium loads only manifest version 3 extensions"
refused "manifest version as a string" "$tmp/strversion.zip" \
  "extension capsolver: manifest_version is \"3\"; current Chromium loads only manifest version 3 extensions"
refused "no manifest_version" "$tmp/noversion.zip" \
  "extension capsolver: manifest.json declares no manifest_version; current Chromium loads only manifest version 3 extensions"
refused "no manifest.json" "$tmp/none.zip" \
  "extension capsolver: the archive has no manifest.json; it is not a Chromium extension"
refused "manifest.json not JSON" "$tmp/badjson.zip" \
  "extension capsolver: manifest.json is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
refused "not an archive" "$tmp/page.zip" \
  "extension capsolver: $tmp/page.zip is neither a zip archive nor a CRX file (it starts with b'<htm'); check the url, or that src names the downloaded .zip or .crx"
refused "CRX version 4" "$tmp/v4.crx" \
  "extension capsolver: $tmp/v4.crx is a CRX file of version 4; only versions 2 and 3 exist"
refused "zip entry outside the archive" "$tmp/slip.zip" \
  "extension capsolver: $tmp/slip.zip has an entry outside the archive: ../evil"
refused "missing file" "$tmp/absent.zip" \
  "extension capsolver: cannot read $tmp/absent.zip (No such file or directory)"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
