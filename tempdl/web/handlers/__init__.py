"""HTTP handlers: each gets what it needs through `initialize(**kwargs)` from `tempdl.app`."""
