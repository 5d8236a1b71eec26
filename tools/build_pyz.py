"""`python tools/build_pyz.py`: make `dist/tempdl.pyz`, one file that runs tempdl on a bare Python 3.11+.

Why shiv and not the standard library's `zipapp`: cryptography (WeChat safe mode) is compiled
code, and an extension module cannot be imported from inside a zip. A stdlib zipapp would have to
drop it (and with it safe mode) and would still have to unpack `migrations/` somewhere, because
Alembic reads its scripts from real files. shiv unpacks the bundled site-packages once, on first
run, into `~/.shiv` or `$SHIV_ROOT` (the systemd unit points that at its CacheDirectory), and then
imports from real files, so every feature works as it does from a checkout.

What goes in:

* the `tempdl` package from this source tree, with `migrations/` copied to `tempdl/_migrations`,
  where `tempdl.audit.engine._migrations_dir` looks when there is no checkout around the package;
* the third-party distributions the package really imports, found by reading its import
  statements (so pytest, playwright, prometheus_client and the PostgreSQL driver stay out unless
  the code starts importing them), plus `tzdata` for machines without a system zoneinfo database,
  and their dependencies. Versions are those installed where the build runs: the pyz carries what
  the test suite ran against.

The pyz is built for this interpreter's platform (CPython 3.11 on x86_64 Linux when built here),
because cryptography and its cffi backend are compiled. Build it on the platform you deploy to.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the checkout
from tempdl import __version__

SOURCE_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = SOURCE_ROOT / "tempdl"
DEFAULT_OUTPUT = SOURCE_ROOT / "dist" / "tempdl.pyz"
ENTRY_POINT = "tempdl.cli.main:main"
SHEBANG = "/usr/bin/env python3"
ALWAYS_VENDORED = ("tzdata",)
"""Not imported by name (zoneinfo finds it), but `timezone = "Asia/Shanghai"` needs it on machines
whose operating system ships no zoneinfo database."""
POSTGRESQL_DRIVER = "psycopg[binary]"
_SKIPPED = ("__pycache__", "*.pyc", "*.pyo")


class BuildError(Exception):
    """The pyz cannot be built; the message says what to install or fix."""


def imported_modules(folders: Iterable[Path]) -> set[str]:
    """Top-level names of the modules imported by the Python files under `folders`."""
    names: set[str] = set()
    for folder in folders:
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_bytes(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def runtime_distributions(folders: Iterable[Path] = (PACKAGE_DIR, SOURCE_ROOT / "migrations")) -> list[str]:
    """The installed distributions that tempdl imports at run time, as `name==version` pins."""
    third_party = imported_modules(folders) - set(sys.stdlib_module_names) - {"tempdl", "__future__"}
    providers = importlib.metadata.packages_distributions()
    pins: set[str] = set()
    for module in sorted(third_party):
        if module not in providers:
            raise BuildError(f"tempdl imports {module!r} but it is not installed: pip install -r requirements.txt")
        for distribution in providers[module]:
            pins.add(f"{distribution}=={importlib.metadata.version(distribution)}")
    return sorted(pins, key=str.lower)


def installed_constraints() -> str:
    """Every installed distribution pinned, so dependencies resolve to the versions tested here."""
    pins = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name and distribution.version:
            pins[name.lower()] = f"{name}=={distribution.version}"
    return "".join(f"{pin}\n" for _, pin in sorted(pins.items()))


def _run(command: Sequence[str | Path], what: str) -> None:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise BuildError(f"{what} failed (exit {done.returncode}):\n{output}")


def install_dependencies(requirements: Sequence[str], site_packages: Path, constraints: Path) -> None:
    """`pip install --target` the requirements (wheels preferred: nothing gets compiled here)."""
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--no-compile",
            "--prefer-binary",
            "--target",
            site_packages,
            "--constraint",
            constraints,
            *requirements,
        ],
        "pip install",
    )
    # pip's console scripts have this build machine's interpreter in their shebang: useless here.
    shutil.rmtree(site_packages / "bin", ignore_errors=True)


def copy_tempdl(site_packages: Path) -> None:
    """The package itself, and the Alembic scripts inside it (found by `db._migrations_dir`)."""
    migrations = SOURCE_ROOT / "migrations"
    if not (migrations / "env.py").is_file():
        raise BuildError(f"{migrations} is missing: build from a tempdl source checkout")
    target = site_packages / "tempdl"
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns(*_SKIPPED))
    shutil.copytree(migrations, target / "_migrations", ignore=shutil.ignore_patterns(*_SKIPPED))


def make_zipapp(site_packages: Path, output: Path) -> None:
    if importlib.util.find_spec("shiv") is None:
        raise BuildError("shiv is not installed: pip install -r requirements-dev.txt")
    output.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "shiv",
            "--site-packages",
            site_packages,
            "--entry-point",
            ENTRY_POINT,
            "--python",
            SHEBANG,
            "--reproducible",  # same inputs, same bytes, same build id (one cache folder per release)
            "--output-file",
            output,
        ],
        "shiv",
    )


def build(output: Path = DEFAULT_OUTPUT, *, with_postgresql: bool = False) -> list[str]:
    """Build the pyz at `output`; return the requirements that went into it."""
    requirements = [*runtime_distributions(), *ALWAYS_VENDORED]
    if with_postgresql:
        requirements.append(POSTGRESQL_DRIVER)
    with tempfile.TemporaryDirectory(prefix="tempdl-build-") as staging:
        site_packages = Path(staging) / "site-packages"
        constraints = Path(staging) / "constraints.txt"
        constraints.write_text(installed_constraints(), encoding="utf-8")
        install_dependencies(requirements, site_packages, constraints)
        copy_tempdl(site_packages)
        make_zipapp(site_packages, output)
    return requirements


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/build_pyz.py", description="Build dist/tempdl.pyz.")
    parser.add_argument("--version", action="version", version=f"tempdl {__version__}")
    parser.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT, help="where to write the pyz")
    parser.add_argument(
        "--with-postgresql",
        action="store_true",
        help=f"also bundle {POSTGRESQL_DRIVER} for a postgresql+psycopg:// database_url",
    )
    args = parser.parse_args(argv)
    try:
        requirements = build(args.output, with_postgresql=args.with_postgresql)
    except BuildError as error:
        sys.stderr.write(f"build_pyz: {error}\n")
        return 1
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    size = args.output.stat().st_size
    platform = f"CPython {sys.version_info.major}.{sys.version_info.minor} on {sysconfig.get_platform()}"
    print(f"built {args.output} ({size / 1024 / 1024:.1f} MiB, sha256 {digest}) for {platform}")
    print("bundled: " + ", ".join(requirements))
    print(f"run it:  python3 {args.output.name} --version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
