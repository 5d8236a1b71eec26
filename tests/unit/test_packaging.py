"""The packaging files agree with each other and with the code.

`requirements.txt` is what the server needs at run time: every distribution tempdl imports, and
no other but `tzdata` (not imported by name; zoneinfo reads it). `pyproject.toml` reads its
dependencies from that file, so they cannot drift; its `postgresql` extra must be the driver the
tests install; `constraints.txt` must pin everything the requirements files name.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools.build_pyz import PACKAGE_DIR, distribution_closure, imported_modules, pinned_versions, requirements_in

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
NOT_IMPORTED_BY_NAME = {"tzdata"}


def _names(requirements: list[Requirement]) -> set[str]:
    return {canonicalize_name(requirement.name) for requirement in requirements}


def test_requirements_txt_is_exactly_what_the_server_imports():
    third_party = imported_modules([PACKAGE_DIR, REPO / "migrations"]) - set(sys.stdlib_module_names)
    providers = importlib.metadata.packages_distributions()
    imported = {canonicalize_name(dist) for module in third_party - {"tempdl"} for dist in providers[module]}
    assert _names(requirements_in(REPO / "requirements.txt")) == imported | NOT_IMPORTED_BY_NAME


def test_every_runtime_requirement_has_an_upper_bound():
    for requirement in requirements_in(REPO / "requirements.txt"):
        if requirement.name not in NOT_IMPORTED_BY_NAME:  # time-zone data: the newest is the right one
            assert any(spec.operator in {"<", "<=", "=="} for spec in requirement.specifier), requirement


def test_pyproject_reads_the_dependencies_and_version_from_their_one_place():
    assert set(PYPROJECT["project"]["dynamic"]) == {"version", "dependencies"}
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]
    assert dynamic == {"version": {"attr": "tempdl.__version__"}, "dependencies": {"file": ["requirements.txt"]}}
    assert PYPROJECT["project"]["scripts"] == {"tempdl": "tempdl.cli.main:main"}


def test_the_postgresql_extra_is_the_driver_the_tests_install():
    [extra] = PYPROJECT["project"]["optional-dependencies"]["postgresql"]
    dev = [str(requirement) for requirement in requirements_in(REPO / "requirements-dev.txt")]
    assert str(Requirement(extra)) in dev


def test_constraints_pin_every_distribution_the_requirements_need():
    requirements = requirements_in(REPO / "requirements.txt") + requirements_in(REPO / "requirements-dev.txt")
    needed = set(distribution_closure(requirements)) - {"pip", "setuptools"}  # the venv's own (shiv needs them)
    pinned = pinned_versions(REPO / "constraints.txt")
    assert needed <= set(pinned), needed - set(pinned)
    assert "tempdl" not in pinned
