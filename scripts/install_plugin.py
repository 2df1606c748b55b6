#!/usr/bin/env python3
"""Install the plugin into a QGIS profile and enable it.

    python scripts/install_plugin.py                      # default profile of this user
    python scripts/install_plugin.py --profile-dir DIR    # another profile folder
    python scripts/install_plugin.py --plugins-dir DIR    # straight into a plugins folder
    python scripts/install_plugin.py --link               # symlink the source tree (development)

By default it unpacks dist/dffn_qgis-<version>.zip (built first if missing, as ``make package``
does) into ``<profile>/python/plugins/dffn_qgis`` replacing any earlier copy, and sets
``PythonPlugins/dffn_qgis=true`` in the profile's QGIS3.ini so QGIS starts it (``--no-enable``
leaves that to the Plugin Manager). The profile folder may also come from ``QGIS_PROFILE_DIR``.
Restart QGIS afterwards.
"""
import argparse
import os
import shutil
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import package  # noqa: E402

PLUGIN = package.PLUGIN
DEFAULT_PROFILE = os.path.join("~", ".local", "share", "QGIS", "QGIS3", "profiles", "default")


def default_profile_dir():
    return os.path.expanduser(os.environ.get("QGIS_PROFILE_DIR") or DEFAULT_PROFILE)


def enable_in_ini(profile_dir, plugin=PLUGIN):
    """Set ``[PythonPlugins] <plugin>=true`` in ``<profile>/QGIS/QGIS3.ini``, keeping the rest."""
    ini = os.path.join(profile_dir, "QGIS", "QGIS3.ini")
    os.makedirs(os.path.dirname(ini), exist_ok=True)
    lines = []
    if os.path.exists(ini):
        with open(ini, encoding="utf-8") as f:
            lines = f.read().splitlines()
    out, in_section, found_section, written = [], False, False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if in_section and not written:
                out.append("{}=true".format(plugin))
                written = True
            in_section = stripped == "[PythonPlugins]"
            found_section = found_section or in_section
        elif in_section and stripped.split("=", 1)[0].strip() == plugin:
            if not written:
                out.append("{}=true".format(plugin))
                written = True
            continue
        out.append(line)
    if in_section and not written:
        out.append("{}=true".format(plugin))
        written = True
    if not found_section:
        if out and out[-1].strip():
            out.append("")
        out += ["[PythonPlugins]", "{}=true".format(plugin)]
    with open(ini, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return ini


def install(plugins_dir, zip_path=None, link=False):
    os.makedirs(plugins_dir, exist_ok=True)
    target = os.path.join(plugins_dir, PLUGIN)
    if os.path.islink(target) or os.path.isfile(target):
        os.remove(target)
    elif os.path.isdir(target):
        shutil.rmtree(target)  # a folder of symlinks (--link) is removed without following them
    if link:
        # Development install: a folder of symlinks to the source package's entries plus
        # metadata.txt, LICENSE and resources/ from the repository root (the source tree itself
        # is left untouched). Re-run after adding a top-level module.
        os.makedirs(target)
        source = os.path.join(ROOT, PLUGIN)
        for name in sorted(os.listdir(source)):
            if name in package.SKIP_DIRS or name.startswith("."):
                continue
            os.symlink(os.path.join(source, name), os.path.join(target, name))
        for name in ("metadata.txt", "LICENSE", "resources"):
            os.symlink(os.path.join(ROOT, name), os.path.join(target, name))
        return target
    zip_path = zip_path or package.build()
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        if not names or any(not n.startswith(PLUGIN + "/") for n in names):
            raise SystemExit("{} is not a {} plugin ZIP".format(zip_path, PLUGIN))
        staging = tempfile.mkdtemp(prefix=".dffn-install-", dir=plugins_dir)
        try:
            zf.extractall(staging)
            os.replace(os.path.join(staging, PLUGIN), target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile-dir", help="QGIS profile folder (default: {}, or $QGIS_PROFILE_DIR)"
                        .format(DEFAULT_PROFILE))
    parser.add_argument("--plugins-dir", help="plugins folder to install into (overrides the profile's)")
    parser.add_argument("--zip", help="plugin ZIP to install (default: build dist/dffn_qgis-<version>.zip)")
    parser.add_argument("--link", action="store_true", help="symlink the source package instead of copying")
    parser.add_argument("--no-enable", action="store_true", help="do not enable the plugin in the profile")
    args = parser.parse_args(argv)

    profile = os.path.abspath(os.path.expanduser(args.profile_dir)) if args.profile_dir else default_profile_dir()
    plugins_dir = os.path.abspath(args.plugins_dir) if args.plugins_dir else os.path.join(profile, "python", "plugins")
    zip_path = args.zip
    if zip_path is None and not args.link:
        version = package.read_metadata()["version"]
        candidate = os.path.join(ROOT, "dist", "{}-{}.zip".format(PLUGIN, version))
        zip_path = candidate if os.path.exists(candidate) else None
    target = install(plugins_dir, zip_path, args.link)
    print("install: {} -> {}".format("source tree (link)" if args.link else (zip_path or "new ZIP"), target))
    if not args.no_enable and not args.plugins_dir:
        ini = enable_in_ini(profile)
        print("install: enabled in {}".format(ini))
    print("install: restart QGIS; the algorithm is Processing > Toolbox > DFFN unmixing > DFFN Unmix")
    return 0


if __name__ == "__main__":
    sys.exit(main())
