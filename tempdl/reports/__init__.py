"""Reports: read-only aggregates of the audit log, and their table, CSV, JSON, chart and metrics forms."""
