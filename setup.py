"""The part of the build that pyproject.toml cannot say: `migrations/` goes in as `tempdl._migrations`.

The Alembic scripts live at the top of the checkout (beside the package, where
`tempdl.audit.engine._migrations_dir` looks first); an installed package finds them inside itself.
Everything else about the package is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tempdl", "tempdl.*"]), "tempdl._migrations", "tempdl._migrations.versions"],
    package_dir={"tempdl._migrations": "migrations"},
)
