"""Under CI (`CI=true`) a skipped test is a failed one.

The engine and browser tests already fail instead of skipping there (`tests.engines`,
`tests/live/test_dashboard_browser.py`); this plugin catches any other skip path, present or
future (an `importorskip`, a `skipif` on a missing tool), so CI can never go green with a part of
the suite silently left out. A test that may really skip on a CI machine says so with
`@pytest.mark.ci_may_skip` (only `systemd-analyze verify` does: systemd is no engine and CI does
not install it). Registered in pytest.ini (`-p tests.ci_guard`).
"""

from __future__ import annotations

import pytest

from tests.support import in_ci


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ci_may_skip: this test may skip under CI=true (tests/ci_guard.py)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail") or item.get_closest_marker("ci_may_skip"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where every test must run: {reason}"
