"""Unpacks a Chromium extension and refuses one Chromium would not load unpacked.

    python3 unpack-extension.py NAME SRC OUT

SRC is a zip archive, a CRX file (version 2 or 3: a header, then a zip archive) or a
directory. OUT is created and receives the files. The result must have `manifest.json` at
its root declaring `"manifest_version": 3`; otherwise this prints one line,
`extension NAME: <problem>`, on stderr and exits 1 (and leaves no OUT behind).
Used by pkgs/chromium-extension.nix at build time; tested by checks/extension-unpack-test.sh.
"""

import io
import json
import os
import shutil
import struct
import sys
import zipfile


class Refused(Exception):
    pass


def zip_payload(data, src):
    """The zip archive inside `data`: the file itself, or a CRX file's payload."""
    if data[:4] == b"Cr24":
        if len(data) < 12:
            raise Refused(f"{src} is a truncated CRX file")
        (version,) = struct.unpack_from("<I", data, 4)
        if version == 3:
            # magic, version, header length, header (a protobuf), zip
            (header,) = struct.unpack_from("<I", data, 8)
            start = 12 + header
        elif version == 2:
            # magic, version, public key length, signature length, key, signature, zip
            if len(data) < 16:
                raise Refused(f"{src} is a truncated CRX file")
            key, sig = struct.unpack_from("<II", data, 8)
            start = 16 + key + sig
        else:
            raise Refused(f"{src} is a CRX file of version {version}; only versions 2 and 3 exist")
        payload = data[start:]
        if payload[:4] != b"PK\x03\x04":
            raise Refused(f"{src} is a CRX{version} file whose payload is not a zip archive")
        return payload
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return data
    raise Refused(
        f"{src} is neither a zip archive nor a CRX file (it starts with {data[:4]!r}); "
        "check the url, or that src names the downloaded .zip or .crx"
    )


def extract(payload, src, out):
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except zipfile.BadZipFile as e:
        raise Refused(f"{src} is not a readable zip archive ({e})")
    with archive:
        for info in archive.infolist():
            parts = info.filename.replace("\\", "/").split("/")
            if info.filename.startswith("/") or ".." in parts:
                raise Refused(f"{src} has an entry outside the archive: {info.filename}")
        try:
            archive.extractall(out)
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise Refused(f"{src} could not be unpacked ({e})")


def find_manifests(out):
    """Relative paths of every manifest.json below `out`, shallowest first."""
    found = []
    for root, dirs, files in os.walk(out):
        dirs.sort()
        if "manifest.json" in files:
            found.append(os.path.relpath(os.path.join(root, "manifest.json"), out))
    return sorted(found, key=lambda p: (p.count(os.sep), p))


def check(out):
    manifest = os.path.join(out, "manifest.json")
    if not os.path.isfile(manifest):
        found = find_manifests(out)
        if found:
            raise Refused(
                f"manifest.json is not at the archive's root (found at {found[0]}); "
                "Chromium loads only a directory with manifest.json at its top"
            )
        raise Refused("the archive has no manifest.json; it is not a Chromium extension")
    try:
        with open(manifest, encoding="utf-8-sig") as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise Refused(f"manifest.json is not valid JSON ({e})")
    if not isinstance(data, dict):
        raise Refused("manifest.json is not a JSON object")
    version = data.get("manifest_version")
    if "manifest_version" not in data:
        raise Refused(
            "manifest.json declares no manifest_version; "
            "current Chromium loads only manifest version 3 extensions"
        )
    if version != 3 or isinstance(version, bool):
        raise Refused(
            f"manifest_version is {json.dumps(version)}; "
            "current Chromium loads only manifest version 3 extensions"
        )


def unpack(src, out):
    if os.path.isdir(src):
        shutil.copytree(src, out, symlinks=False)
        return
    try:
        with open(src, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Refused(f"cannot read {src} ({e.strerror})")
    payload = zip_payload(data, src)
    os.makedirs(out)
    extract(payload, src, out)


def main(argv):
    if len(argv) != 4:
        print("usage: unpack-extension.py NAME SRC OUT", file=sys.stderr)
        return 2
    name, src, out = argv[1:]
    if os.path.lexists(out):
        print(f"extension {name}: {out} already exists", file=sys.stderr)
        return 2
    try:
        unpack(src, out)
        check(out)
    except Refused as e:
        if os.path.lexists(out):
            shutil.rmtree(out)
        print(f"extension {name}: {e}", file=sys.stderr)
        return 1
    # Extension files are data: readable, never executable or writable in the result.
    for root, dirs, files in os.walk(out):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
