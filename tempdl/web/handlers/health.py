"""`GET /healthz`: 200 `ok` when the audit database would take a write now, else 503.

A read-only, full or locked database still answers reads, but no download may be served
unrecorded, so the health check commits a real write (`AuditLog.probe_write`).
"""

from __future__ import annotations

from tempdl.audit.log import AuditLog
from tempdl.errors import AuditUnavailable
from tempdl.web.handlers.base import BaseHandler


class HealthHandler(BaseHandler):
    def initialize(self, *, audit: AuditLog) -> None:
        self.audit = audit

    def head(self):  # load balancers often probe with HEAD
        return self.get()

    async def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        try:
            await self.audit.run(self.audit.probe_write)
        except AuditUnavailable:
            self.set_status(503)
            self.set_header("Retry-After", "10")
            self.write("database unavailable")
            return
        self.write("ok")
