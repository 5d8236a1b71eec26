"""`GET /healthz`: 200 `ok` when the audit database answers, else 503, for load balancers."""

from __future__ import annotations

from tempdl.audit import AuditLog, AuditUnavailable
from tempdl.db import ping
from tempdl.handlers.base import BaseHandler


class HealthHandler(BaseHandler):
    def initialize(self, *, audit: AuditLog) -> None:
        self.audit = audit

    async def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        try:
            await self.audit.run(ping, self.audit.engine)
        except AuditUnavailable:
            self.set_status(503)
            self.write("database unavailable")
            return
        self.write("ok")
