"""The audit log: the tables operators query, the engine that opens them, and the one writer."""
