"""SIGHUP: read the config again and serve with it; and telling systemd (`Type=notify`) how we are.

A reload builds everything from the new file before anything changes (`TempdlApp.reload`), so a
config that does not load is refused with one log line and the running one stays. Downloads in
flight keep what they were granted. Keys the listening socket or the audit database were made
from cannot change under a running server: they are named in a log line and kept as they are.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import fields, replace

from tempdl.app import TempdlApp
from tempdl.config.keys import default_public_url
from tempdl.config.load import load_settings
from tempdl.config.secret import ensure_secret_keys
from tempdl.config.settings import Settings
from tempdl.errors import ConfigError
from tempdl.web.access_log import quoted

log = logging.getLogger("tempdl.server")

RESTART_KEYS = {"address": "address", "port": "port", "data_dir": "data_dir", "database_url": "database_url"}
"""Settings attribute to config key, for what only a restart changes (SPEC.md)."""
RESTART_ALSO = {"serve_mode": "serve_mode"}
"""Also fixed at start: whether the HTTP server trusts nginx's X-Real-IP follows `serve_mode`."""


def notify(state: str) -> bool:
    """Send `state` (e.g. ``READY=1``) to systemd's `$NOTIFY_SOCKET`; False when there is none.

    The protocol is one datagram on a Unix socket; a name starting with `@` is in the abstract
    namespace (a leading NUL byte). Failures are ignored: a server must not stop over a status.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as error:
        log.warning("event=notify_failed state=%s error=%s", state.split("=")[0], quoted(error.strerror or ""))
        return False
    return True


def settings_loader(args: argparse.Namespace) -> Callable[[], Settings]:
    """What reads the settings again on SIGHUP: the same flags `serve` was given, the environment
    and the config file as they are now."""
    flags = {key: getattr(args, key, None) for key in ("config", "address", "port", "data_dir")}
    return functools.partial(load_settings, flags)


def restart_only_changes(running: Settings, loaded: Settings) -> list[str]:
    """The config keys whose new values need a restart, in SPEC's order."""
    names = {**RESTART_KEYS, **RESTART_ALSO}
    return [key for attribute, key in names.items() if getattr(running, attribute) != getattr(loaded, attribute)]


def pinned(running: Settings, loaded: Settings) -> Settings:
    """`loaded`, with what needs a restart kept as `running` has it.

    A `public_url` left to its default is derived from the address and port, so it follows the
    ones kept: links must point where the server still listens, not at the port it will take.
    """
    kept = {name: getattr(running, name) for name in (*RESTART_KEYS, *RESTART_ALSO)}
    if loaded.public_url == default_public_url(loaded.address, loaded.port):
        kept["public_url"] = default_public_url(running.address, running.port)
    return replace(loaded, **kept)


def reload(app: TempdlApp, load: Callable[[], Settings]) -> bool:
    """Load the config again and serve the next requests with it; False (nothing changed) on failure."""
    notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
    try:
        return _reload(app, load)
    finally:
        notify("READY=1")


def _reload(app: TempdlApp, load: Callable[[], Settings]) -> bool:
    running = app.config
    try:
        loaded = load()
        settings = ensure_secret_keys(pinned(running, loaded))
        app.reload(settings)
    except ConfigError as error:
        log.error("event=reload_refused error=%s kept=running_config", quoted(str(error)))
        return False
    except Exception as error:  # whatever the new config breaks, the running one stays
        log.error("event=reload_refused error=%s kept=running_config", quoted(f"{type(error).__name__}: {error}"))
        return False
    needs_restart = restart_only_changes(running, loaded)
    if needs_restart:
        log.warning("event=reload_needs_restart keys=%s kept=running_values", ",".join(needs_restart))
    changed = [f.name for f in fields(Settings) if getattr(running, f.name) != getattr(settings, f.name)]
    log.info(
        "event=reloaded config=%s changed=%s files=%s",
        quoted(settings.config_path or "none"),
        ",".join(changed) or "none",
        "all" if settings.files is None else len(settings.files),
    )
    return True
