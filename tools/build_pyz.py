"""`python tools/build_pyz.py`: make `dist/tempdl.pyz`, one file that runs tempdl on a bare Python 3.11+.

Why shiv and not the standard library's `zipapp`: cryptography (WeChat safe mode) is compiled
code, and an extension module cannot be imported from inside a zip. A stdlib zipapp would have to
drop it (and with it safe mode) and would still have to unpack `migrations/` somewhere, because
Alembic reads its scripts from real files. shiv unpacks the bundled site-packages once, on first
run, into `~/.shiv` or `$SHIV_ROOT` (the systemd unit points that at its CacheDirectory), and then
imports from real files, so every feature works as it does from a checkout.

What goes in:

* the `tempdl` package from this source tree, with `migrations/` copied to `tempdl/_migrations`,
  where an installed package keeps them too (setup.py);
* the distributions `requirements.txt` names (what the server needs at run time, no more) and
  their dependencies, copied file by file from where they are installed (each distribution's
  RECORD), so the build needs no package index. Their versions must be the ones `constraints.txt`
  pins (what CI ran): a different version installed stops the build, naming it.

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

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the checkout
from tempdl import __version__

SOURCE_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = SOURCE_ROOT / "tempdl"
DEFAULT_OUTPUT = SOURCE_ROOT / "dist" / "tempdl.pyz"
ENTRY_POINT = "tempdl.cli.main:main"
SHEBANG = "/usr/bin/env python3"
CONSTRAINTS = SOURCE_ROOT / "constraints.txt"
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


def requirements_in(path: Path) -> list[Requirement]:
    """The requirements a pip requirements file states itself (comments and `-r` lines left out)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def pinned_versions(path: Path = CONSTRAINTS) -> dict[str, str]:
    """`name==version` lines of a constraints file, by canonical name."""
    pins = {}
    for requirement in requirements_in(path):
        [specifier] = requirement.specifier
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def distribution_closure(requirements: Iterable[Requirement]) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions that `requirements` need, with their dependencies, by canonical name."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [(requirement, "") for requirement in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise BuildError(f"{requirement} is not installed: pip install -r requirements-dev.txt") from None
        for wanted in sorted(requirement.extras):  # psycopg[binary]: what the extra adds, once
            pending += [(Requirement(line), wanted) for line in distribution.requires or ()]
        if name in found:
            continue
        found[name] = distribution
        pending += [(Requirement(line), "") for line in distribution.requires or ()]
    return found


def runtime_distributions(*, with_postgresql: bool = False) -> list[str]:
    """What the pyz bundles besides tempdl, as `name==version` pins of the installed distributions."""
    requirements = requirements_in(SOURCE_ROOT / "requirements.txt")
    if with_postgresql:
        requirements.append(Requirement(POSTGRESQL_DRIVER))
    closure = distribution_closure(requirements)
    return sorted((f"{dist.metadata['Name']}=={dist.version}" for dist in closure.values()), key=str.lower)


def check_constraints(pins: Iterable[str], constraints: dict[str, str]) -> None:
    """Refuse to bundle a version other than the one CI ran (`constraints.txt`)."""
    wrong = []
    for pin in pins:
        name, version = pin.split("==")
        expected = constraints.get(canonicalize_name(name))
        if expected != version:
            wrong.append(f"{name} {version} (constraints.txt: {expected or 'not listed'})")
    if wrong:
        raise BuildError(
            "installed versions differ from constraints.txt: " + ", ".join(wrong) + "; "
            "pip install -c constraints.txt -r requirements-dev.txt"
        )


def copy_distributions(pins: Iterable[str], site_packages: Path) -> None:
    """Copy each distribution's installed files (its RECORD) into `site_packages`.

    Console scripts (outside site-packages, with this machine's interpreter in their shebang) and
    byte code are left out: the pyz compiles nothing ahead and runs no script but its own.
    """
    for pin in pins:
        distribution = importlib.metadata.distribution(pin.split("==")[0])
        if distribution.files is None:
            raise BuildError(f"{pin} has no RECORD of its files: reinstall it with pip")
        for relative in distribution.files:
            if relative.parts[0] == ".." or "__pycache__" in relative.parts or relative.suffix in {".pyc", ".pyo"}:
                continue
            target = site_packages / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(distribution.locate_file(relative))), target)


def _run(command: Sequence[str | Path], what: str) -> None:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise BuildError(f"{what} failed (exit {done.returncode}):\n{output}")


def copy_tempdl(site_packages: Path) -> None:
    """The package itself, and the Alembic scripts inside it, where an installed package has them."""
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
    """Build the pyz at `output`; return the distributions that went into it besides tempdl."""
    pins = runtime_distributions(with_postgresql=with_postgresql)
    check_constraints(pins, pinned_versions())
    with tempfile.TemporaryDirectory(prefix="tempdl-build-") as staging:
        site_packages = Path(staging) / "site-packages"
        copy_distributions(pins, site_packages)
        copy_tempdl(site_packages)
        make_zipapp(site_packages, output)
    return pins


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
