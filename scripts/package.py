#!/usr/bin/env python3
"""Build the QGIS plugin ZIP: dist/dffn_qgis-<version>.zip.

The archive holds one top folder, ``dffn_qgis/``, which is what QGIS's "Install from ZIP"
expects: the Python package ``dffn_qgis/`` of this repository (no caches, no hidden files),
plus ``metadata.txt``, ``LICENSE`` and ``resources/`` (the icon) from the repository root.
Entries are sorted and dated 1980-01-01, so the same sources give the same bytes.

    python scripts/package.py [--output-dir DIR]     # prints the ZIP's path
"""
import argparse
import configparser
import os
import re
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = "dffn_qgis"
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author",
                     "email", "repository")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", "tests"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", ".swp", "~")
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def read_metadata(path=os.path.join(ROOT, "metadata.txt")):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    with open(path, encoding="utf-8") as f:
        parser.read_file(f)
    general = dict(parser["general"])
    missing = [key for key in REQUIRED_METADATA if not general.get(key, "").strip()]
    if missing:
        raise SystemExit("metadata.txt lacks required field(s): " + ", ".join(missing))
    return general


def plugin_files():
    """(path on disk, path in the archive) of every file that goes into the plugin."""
    entries = []
    package_dir = os.path.join(ROOT, PLUGIN)
    for folder, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.endswith(SKIP_SUFFIXES):
                continue
            full = os.path.join(folder, name)
            entries.append((full, os.path.join(PLUGIN, os.path.relpath(full, package_dir))))
    for name in ("metadata.txt", "LICENSE"):
        entries.append((os.path.join(ROOT, name), os.path.join(PLUGIN, name)))
    resources = os.path.join(ROOT, "resources")
    for folder, dirs, files in os.walk(resources):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            full = os.path.join(folder, name)
            entries.append((full, os.path.join(PLUGIN, "resources", os.path.relpath(full, resources))))
    for full, _ in entries:
        if not os.path.isfile(full):
            raise SystemExit("missing file for the plugin: " + os.path.relpath(full, ROOT))
    return sorted(entries, key=lambda e: e[1])


def build(output_dir=os.path.join(ROOT, "dist")):
    metadata = read_metadata()
    icon = metadata.get("icon")
    entries = plugin_files()
    names = {arc.replace(os.sep, "/") for _, arc in entries}
    if icon and "{}/{}".format(PLUGIN, icon) not in names:
        raise SystemExit("metadata.txt names icon={} but the plugin has no such file".format(icon))
    os.makedirs(output_dir, exist_ok=True)
    target = os.path.join(output_dir, "{}-{}.zip".format(PLUGIN, metadata["version"]))
    tmp = target + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for full, arc in entries:
            info = zipfile.ZipInfo(arc.replace(os.sep, "/"), FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(full, "rb") as f:
                zf.writestr(info, f.read())
    os.replace(tmp, target)
    return target


MAX_SIZE = 25_000_000            # the plugin repository's upload limit (bytes)
REPOSITORY_FIELDS = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about",
                     "tracker", "repository")
URL_FIELDS = ("tracker", "repository", "homepage")


def repository_problems(zip_path):
    """What the official plugin repository (plugins.qgis.org) would refuse in this ZIP, as far as
    it can be checked offline: size, paths, compiled files and caches, one top folder with a valid
    name holding __init__.py, metadata.txt and LICENSE, the required metadata, well-formed URLs,
    the icon. (It also fetches the URLs; that needs the network and is not checked here.)"""
    problems = []
    if os.path.getsize(zip_path) > MAX_SIZE:
        problems.append("larger than the repository's {} MB".format(MAX_SIZE // 1_000_000))
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        return ["not a ZIP file"]
    with zf:
        names = zf.namelist()
        if zf.testzip() is not None:
            problems.append("corrupt entry: {}".format(zf.testzip()))
        for name in names:
            parts = name.split("/")
            if ".." in parts or name.startswith("/"):
                problems.append("path outside the plugin folder: {}".format(name))
            if name.endswith((".pyc", ".pyo")) or {"__pycache__", ".git", "__MACOSX"} & set(parts):
                problems.append("compiled file or cache folder: {}".format(name))
        tops = sorted({name.split("/")[0] for name in names})
        if len(tops) != 1:
            return problems + ["more than one top folder: {}".format(", ".join(tops))]
        top = tops[0]
        if not re.match(r"^[A-Za-z][A-Za-z0-9_-]+$", top):
            problems.append("top folder name {!r} is not letters, digits, - and _".format(top))
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if "{}/{}".format(top, required) not in names:
                problems.append("no {} in {}/".format(required, top))
        if "{}/metadata.txt".format(top) not in names:
            return problems
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        try:
            parser.read_string(zf.read("{}/metadata.txt".format(top)).decode("utf-8"))
            general = dict(parser["general"])
        except (configparser.Error, KeyError, UnicodeDecodeError) as exc:
            return problems + ["metadata.txt cannot be read: {}".format(" ".join(str(exc).split()))]
        missing = [key for key in REPOSITORY_FIELDS if not general.get(key, "").strip()]
        if missing:
            problems.append("metadata.txt lacks: {}".format(", ".join(missing)))
        for key in URL_FIELDS:
            url = general.get(key, "").strip()
            if url and not re.match(r"^https?://[^/\s]+", url):
                problems.append("metadata.txt {} is not a web address: {!r}".format(key, url))
        if "/" in general.get("author", ""):
            problems.append("metadata.txt author contains a slash")
        icon = general.get("icon", "").strip()
        if icon and "{}/{}".format(top, icon[2:] if icon.startswith("./") else icon) not in names:
            problems.append("metadata.txt icon={} is not in the ZIP".format(icon))
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "dist"),
                        help="folder for the ZIP (default: dist/)")
    args = parser.parse_args(argv)
    target = build(os.path.abspath(args.output_dir))
    problems = repository_problems(target)
    if problems:
        raise SystemExit("package: the plugin repository would refuse {}:\n  {}".format(
            os.path.basename(target), "\n  ".join(problems)))
    with zipfile.ZipFile(target) as zf:
        count = len(zf.namelist())
    print("package: {} ({} files, {:.0f} kB)".format(
        os.path.relpath(target, os.getcwd()) if target.startswith(os.getcwd()) else target,
        count, os.path.getsize(target) / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(main())
