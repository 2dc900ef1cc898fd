#!/usr/bin/env python3
"""Build site/: the tutorials and the kit as a static JupyterLite site (the browser edition).

    python3 tools/build_site.py            (what `make site` runs)
    python3 -m http.server -d site         then open http://127.0.0.1:8000/

The site runs Python in the browser (Pyodide) and asks no other host for anything:
the Pyodide runtime, every wheel it loads and JupyterLab's pages are inside site/.
This script needs the package registries once (pip for PyPI, npm for the Pyodide
runtime) and keeps what it fetched under .cache/site/, so a second build is quick:

1. a build environment (.cache/site/venv) with jupyterlite-core and the Pyodide
   kernel, plus ipywidgets and anywidget, whose JupyterLab extensions are copied in;
2. the Pyodide runtime, the npm package pyodide@PYODIDE_VERSION;
3. the pure-Python wheels the kernel loads (its lock names them; PyPI has the same
   versions) and the kit's own dependencies, downloaded from PyPI for Python 3.14;
4. the kit's wheel, built from this checkout;
5. a Pyodide lock cut to exactly those wheels, with their real sha256, and an entry
   for the kit so that `import gotalk_lab` loads it and its dependencies;
6. `jupyter lite build` from a clean folder (a stale .jupyterlite.doit.db once
   dropped the local Pyodide URL and sent the site to a CDN).

Only the standard library is used here: any Python 3.10+ runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "site"

JUPYTERLITE_VERSION = "0.8.6"  # jupyterlite-core and jupyterlite-pyodide-kernel
PYODIDE_VERSION = "314.0.6"  # the one jupyterlite-pyodide-kernel 0.8.6 names (Python 3.14)
PYODIDE_PYTHON = "3.14"

# The kit's dependencies as the site ships them. ipywidgets and anywidget are also
# installed in the build environment at the same versions: their JupyterLab
# extensions (the JavaScript half of each widget) must match the Python half.
SITE_PACKAGES = {
    "ipywidgets": "8.1.9",
    "anywidget": "0.11.0",
    "psygnal": "0.16.1",
    "websockets": "17.4",
    "comm": "0.2.3",  # installed at kernel start, yet in neither the lock nor the kernel's wheels
}
# What each of them imports at run time, by lock name (the lock lists the rest).
SITE_DEPENDS = {
    "ipywidgets": ["comm", "ipython", "traitlets"],
    "anywidget": ["ipywidgets", "psygnal", "typing-extensions"],
    "psygnal": [],
    "websockets": [],
    "comm": [],
}
SITE_IMPORTS = {"ipywidgets": ["ipywidgets"], "anywidget": ["anywidget"], "psygnal": ["psygnal"], "websockets": ["websockets"], "comm": ["comm"]}
# The kit in the browser: what `import gotalk_lab` (and its lab layer) imports.
KIT_DEPENDS = ["websockets", "ipywidgets", "anywidget", "traitlets"]
# The lock's packages the kernel itself loads (with their dependencies, from the lock).
KERNEL_NEEDS = ["micropip", "packaging", "ipython", "jedi", "typing-extensions"]

BUILD_REQUIREMENTS = [
    f"jupyterlite-core=={JUPYTERLITE_VERSION}",
    f"jupyterlite-pyodide-kernel=={JUPYTERLITE_VERSION}",
    "jupyter_server>=2.10",
    f"ipywidgets=={SITE_PACKAGES['ipywidgets']}",
    f"anywidget=={SITE_PACKAGES['anywidget']}",
    "setuptools>=77",  # builds the kit's wheel without a network round trip each time
]

# What the pages are told: no PyPI, no news from the internet.
JUPYTER_LITE_JSON = {
    "jupyter-lite-schema-version": 0,
    "jupyter-config-data": {
        "appName": "gotalk_lab in the browser",
        "disabledExtensions": ["@jupyterlab/apputils-extension:announcements"],
        "litePluginSettings": {
            "@jupyterlite/pyodide-kernel-extension:kernel": {"disablePyPIFallback": True},
        },
    },
}

# The runtime files the site serves: the module the kernel loads and what it fetches
# (the npm package also holds the classic pyodide.js, docs, typings and sourcemaps).
PYODIDE_FILES = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip"]

started = time.monotonic()


def say(text: str) -> None:
    print(f"site [{time.monotonic() - started:5.1f} s] {text}", flush=True)


class BuildError(Exception):
    """What went wrong, in words a person can act on."""


def run(command: list[str], what: str, **options) -> str:
    """Run ``command``; on failure raise a BuildError with ``what`` and the end of its output."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, **options)
    except FileNotFoundError:
        raise BuildError(f"{what}: {command[0]} was not found") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise BuildError(f"{what} failed (exit {done.returncode}):\n  $ {' '.join(command)}\n{tail}")
    return done.stdout


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


# 1. The build environment ---------------------------------------------------------


def build_environment() -> Path:
    venv = CACHE / "venv"
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    wanted = "\n".join(BUILD_REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        say(f"build environment: cached ({venv.relative_to(ROOT)})")
        return python
    say(f"build environment: creating {venv.relative_to(ROOT)} (jupyterlite-core {JUPYTERLITE_VERSION}, from PyPI)")
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)], "creating the build environment")
    run([str(python), "-m", "pip", "install", "--quiet", *BUILD_REQUIREMENTS], "installing the build environment from PyPI")
    stamp.write_text(wanted)
    return python


# 2. The Pyodide runtime ------------------------------------------------------------


def pyodide_package() -> Path:
    """The npm package pyodide@PYODIDE_VERSION, unpacked (from the npm registry once)."""
    tarball = CACHE / f"pyodide-{PYODIDE_VERSION}.tgz"
    unpacked = CACHE / f"pyodide-{PYODIDE_VERSION}"
    if not tarball.exists():
        if shutil.which("npm") is None:
            raise BuildError(f"npm is needed once to fetch the Pyodide runtime (pyodide@{PYODIDE_VERSION}): install Node.js and npm")
        say(f"pyodide: fetching pyodide@{PYODIDE_VERSION} from the npm registry")
        partial = CACHE / "npm-pack"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        run(["npm", "pack", "--silent", f"pyodide@{PYODIDE_VERSION}", "--pack-destination", str(partial)], "npm pack pyodide")
        (partial / tarball.name).replace(tarball)
        shutil.rmtree(partial)
        shutil.rmtree(unpacked, ignore_errors=True)
    else:
        say(f"pyodide: cached ({tarball.relative_to(ROOT)})")
    if not (unpacked / "package" / "pyodide-lock.json").exists():
        shutil.rmtree(unpacked, ignore_errors=True)
        with tarfile.open(tarball) as archive:
            if sys.version_info >= (3, 12):
                archive.extractall(unpacked, filter="data")  # no paths outside unpacked/
            else:
                archive.extractall(unpacked)
    package = unpacked / "package"
    missing = [name for name in [*PYODIDE_FILES, "pyodide-lock.json"] if not (package / name).exists()]
    if missing:
        raise BuildError(f"the npm package pyodide@{PYODIDE_VERSION} lacks {', '.join(missing)}: delete {tarball} and build again")
    return package


# 3. The wheels ---------------------------------------------------------------------


def kernel_closure(lock: dict) -> list[str]:
    """The lock's names the kernel needs, with every dependency the lock gives them."""
    packages = lock["packages"]
    wanted: list[str] = []
    todo = list(KERNEL_NEEDS)
    while todo:
        name = normalize(todo.pop())
        if name in wanted:
            continue
        if name not in packages:
            raise BuildError(f"pyodide-lock.json has no {name!r}: is pyodide@{PYODIDE_VERSION} the version the kernel expects?")
        wanted.append(name)
        todo.extend(packages[name]["depends"])
    return sorted(wanted)


def lock_by_normal_name(lock: dict) -> dict:
    return {normalize(name): entry for name, entry in lock["packages"].items()}


def download_wheels(python: Path, wanted: dict[str, str]) -> dict[str, Path]:
    """Pure wheels for Python 3.14 from PyPI, {name: version} -> {name: file}, cached."""
    folder = CACHE / "wheels"
    folder.mkdir(parents=True, exist_ok=True)

    def cached(name: str, version: str) -> Path | None:
        stem = name.replace("-", "_").lower()
        for path in folder.glob("*.whl"):
            dist, found_version = path.name.split("-")[:2]
            if dist.lower().replace(".", "_") == stem and found_version == version:
                return path
        return None

    missing = [f"{name}=={version}" for name, version in wanted.items() if cached(name, version) is None]
    if missing:
        say(f"wheels: downloading {len(missing)} from PyPI ({len(wanted) - len(missing)} cached)")
        run(
            [str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--platform", "any", "--python-version", PYODIDE_PYTHON, "--implementation", "py", "--abi", "none",
             "--dest", str(folder), *missing],
            "downloading the wheels from PyPI",
        )
    else:
        say(f"wheels: {len(wanted)} cached ({folder.relative_to(ROOT)})")
    files = {}
    for name, version in wanted.items():
        path = cached(name, version)
        if path is None:
            raise BuildError(f"PyPI gave no pure wheel of {name} {version} (py3-none-any) for Python {PYODIDE_PYTHON}")
        files[name] = path
    return files


# 4. The kit's wheel ---------------------------------------------------------------------


def kit_wheel(python: Path, into: Path) -> Path:
    say("gotalk_lab: building its wheel from this checkout")
    into.mkdir(parents=True, exist_ok=True)
    scratch = CACHE / "kit-build"
    shutil.rmtree(scratch, ignore_errors=True)
    # setuptools writes build/ and *.egg-info into the source folder; a copy keeps the checkout clean.
    shutil.copytree(ROOT, scratch, ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "site", "build", "*.egg-info", "__pycache__", ".*_cache", "tests", "benchmarks", "docs"))
    run([str(python), "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(into), str(scratch)], "building the gotalk_lab wheel")
    shutil.rmtree(scratch)
    wheels = sorted(into.glob("gotalk_lab-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one gotalk_lab wheel in {into}, found {[w.name for w in wheels]}")
    return wheels[0]


# 5. The lock ---------------------------------------------------------------------------


def lock_entry(name: str, version: str, wheel: Path, imports: list[str], depends: list[str]) -> dict:
    return {
        "name": name,
        "version": version,
        "file_name": wheel.name,
        "install_dir": "site",
        "sha256": sha256(wheel),
        "package_type": "package",
        "imports": imports,
        "depends": depends,
        "unvendored_tests": False,
    }


def cut_lock(lock: dict, shipped: dict[str, Path], kit: Path) -> dict:
    """The lock for exactly the shipped wheels: the lock's own entries, re-hashed, and the kit's."""
    original = lock_by_normal_name(lock)
    packages = {}
    for name, wheel in sorted(shipped.items()):
        if name in original:
            entry = dict(original[name], file_name=wheel.name, sha256=sha256(wheel), unvendored_tests=False)
        else:
            entry = lock_entry(name, SITE_PACKAGES[name], wheel, SITE_IMPORTS[name], SITE_DEPENDS[name])
        packages[name] = entry  # keyed by the normalized name, as Pyodide's own lock is
    kit_version = kit.name.split("-")[1]
    packages["gotalk-lab"] = lock_entry("gotalk-lab", kit_version, kit, ["gotalk_lab"], KIT_DEPENDS)
    names = {normalize(name) for name in packages}
    for entry in packages.values():
        absent = [dependency for dependency in entry["depends"] if normalize(dependency) not in names]
        if absent:
            raise BuildError(f"the cut lock's {entry['name']} depends on {absent}, which the site does not ship")
    return {"info": lock["info"], "packages": packages}


# 6. The site ---------------------------------------------------------------------------


def lite_folder(package: Path, wheels: dict[str, Path], kit: Path, lock: dict) -> Path:
    """A fresh lite dir: jupyter-lite.json, the notebooks, static/pyodide/ with runtime, wheels and lock."""
    lite = CACHE / "lite"
    shutil.rmtree(lite, ignore_errors=True)  # no stale .jupyterlite.doit.db, no old wheels
    pyodide = lite / "static" / "pyodide"
    pyodide.mkdir(parents=True)
    for name in PYODIDE_FILES:
        shutil.copy2(package / name, pyodide / name)
    for wheel in [*wheels.values(), kit]:
        shutil.copy2(wheel, pyodide / wheel.name)
    (pyodide / "pyodide-lock.json").write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    (lite / "jupyter-lite.json").write_text(json.dumps(JUPYTER_LITE_JSON, indent=2) + "\n")
    shutil.copytree(ROOT / "notebooks", lite / "files", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return lite


def lite_build(python: Path, lite: Path, output: Path) -> None:
    say(f"jupyter lite build -> {output}")
    if output.exists():
        shutil.rmtree(output)
    environment = dict(os.environ)
    environment.pop("JUPYTERLITE_PYODIDE_URL", None)  # the site's own Pyodide, never one from elsewhere
    run(
        [str(python), "-m", "jupyterlite_core", "build", "--lite-dir", str(lite), "--output-dir", str(output),
         "--contents", str(lite / "files"), "--apps", "lab", "--no-sourcemaps", "--no-unused-shared-packages"],
        "jupyter lite build",
        cwd=lite,
        env=environment,
    )


def check_site(output: Path, lock: dict) -> None:
    """The site must name its own Pyodide and hold every file its lock lists."""
    config = json.loads((output / "jupyter-lite.json").read_text())["jupyter-config-data"]
    kernel = config.get("litePluginSettings", {}).get("@jupyterlite/pyodide-kernel-extension:kernel", {})
    if kernel.get("pyodideUrl") != "./static/pyodide/pyodide.mjs":
        raise BuildError(f"jupyter-lite.json points at the Pyodide {kernel.get('pyodideUrl')!r}, not the site's own")
    if kernel.get("disablePyPIFallback") is not True:
        raise BuildError("jupyter-lite.json lost disablePyPIFallback: the kernel would ask PyPI")
    pyodide = output / "static" / "pyodide"
    for entry in lock["packages"].values():
        shipped = pyodide / entry["file_name"]
        if not shipped.exists() or sha256(shipped) != entry["sha256"]:
            raise BuildError(f"{shipped} is missing or does not match the lock")
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if not (output / "files" / notebook.name).exists():
            raise BuildError(f"{notebook.name} is not in the site's files")


def size(folder: Path) -> str:
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return f"{total / 1e6:.0f} MB in {sum(1 for _ in folder.rglob('*'))} files"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "site", help="where the site goes (default: site/)")
    arguments = parser.parse_args()
    output = arguments.output.resolve()
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        python = build_environment()
        package = pyodide_package()
        original_lock = json.loads((package / "pyodide-lock.json").read_text())
        lock_names = lock_by_normal_name(original_lock)
        wanted = {name: lock_names[name]["version"] for name in kernel_closure(original_lock)}
        wanted.update(SITE_PACKAGES)
        wheels = download_wheels(python, wanted)
        kit = kit_wheel(python, CACHE / "kit")
        lock = cut_lock(original_lock, wheels, kit)
        say(f"lock: {len(lock['packages'])} packages (of {len(original_lock['packages'])} in Pyodide's), hashed as shipped")
        lite = lite_folder(package, wheels, kit, lock)
        shutil.rmtree(CACHE / "kit")
        lite_build(python, lite, output)
        check_site(output, lock)
    except BuildError as error:
        print(f"site: build failed: {error}", file=sys.stderr)
        return 1
    say(f"done: {output} ({size(output)}); serve it with: python3 -m http.server -d {os.path.relpath(output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
