"""What counts as a download, as SQLAlchemy expressions: the limits' statements and the reports
share them (`tempdl.audit.statements`, `tempdl.audit.rollup_sums`, `tempdl.reports`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Integer, func, type_coerce

from tempdl.audit.records import Outcome
from tempdl.audit.tables import download_attempts as _attempts

COUNTED = (Outcome.OK, Outcome.PARTIAL)
"""Outcomes whose bytes count as downloaded."""

DOWNLOAD = func.coalesce(_attempts.c.method, "GET") != "HEAD"
"""A row of a GET: a HEAD never counts as a download (NULL is a GET, on rows older than 0003)."""


def total_of(amount: ColumnElement[Any]) -> ColumnElement[int]:
    """SUM(amount), 0 over no rows, typed as the whole number it is."""
    return type_coerce(func.coalesce(func.sum(amount), 0), Integer)
