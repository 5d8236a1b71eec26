"""tempdl: temporary download links handed out by a WeChat Official Account, with an audit trail."""

__version__ = "0.1.0"
