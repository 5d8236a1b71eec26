"""Throw-away *real* PostgreSQL and nginx instances for the test suite.

Why real engines: tempdl's audit database must behave the same on SQLite and
PostgreSQL, and its download path relies on nginx honouring X-Accel-Redirect,
``internal`` locations and Range requests. Mocks cannot prove either, so these
helpers start private, disposable servers on free loopback ports:

* :func:`throwaway_postgres` -- ``initdb`` + ``pg_ctl start`` on a temp cluster,
  trust auth on 127.0.0.1, durability switched off for speed.
* :func:`throwaway_nginx` -- Debian's ``/usr/sbin/nginx`` with a temp prefix and
  a config the test writes (see :func:`minimal_nginx_config`).

Both are context managers that always stop the server, even when the test
body raises. ``postgres_available()`` / ``nginx_available()`` return ``None``
or a human-readable reason; ``skip_or_fail_without_postgres()`` /
``skip_or_fail_without_nginx()`` turn that into ``pytest.skip`` locally and
``pytest.fail`` under ``CI=true`` (CI must never silently skip these).

Install the engines with ``.ci/install-engines.sh`` (Debian packages
``postgresql`` and ``nginx``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator

from tests.support import in_ci, wait_until

LOOPBACK = "127.0.0.1"

#: How long a server may take to come up before we give up and show its log.
START_TIMEOUT_S = 30.0
#: Attempts with a fresh port when another process grabbed ours in between
#: :func:`free_port` and the server binding it.
PORT_ATTEMPTS = 3


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The kernel picks it (bind to port 0). There is an unavoidable race until
    the server binds it, so the starters below retry with a new port when the
    bind fails with "Address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _skip_or_fail(reason: str | None) -> None:
    """``pytest.skip`` (or ``pytest.fail`` under ``CI=true``) when *reason* is set."""
    if reason is None:
        return
    import pytest  # imported lazily: this module is also usable outside pytest

    if in_ci():  # CI must exercise the real engines, so a missing one is a failure there
        pytest.fail(f"{reason} (CI=true: real engines are required, not skipping)", pytrace=False)
    pytest.skip(reason)


def _port_accepts(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:*port*."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _short_tmp_root() -> str:
    """A short, world-traversable directory for things other users must reach.

    pytest's ``tmp_path`` lives under ``/tmp/pytest-of-root`` (mode 0700), which
    the unprivileged ``postgres`` user cannot traverse, and its long paths can
    exceed the ~107-byte limit on Unix socket paths. ``/tmp`` has neither issue.
    """
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


def _tail(path: pathlib.Path, max_chars: int = 6000) -> str:
    """The end of a log file for error messages ('' when unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-max_chars:]


class EngineStartError(RuntimeError):
    """A throw-away server did not come up; the message includes its log."""


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

#: Superuser created by initdb; trust auth means no password is needed.
PG_SUPERUSER = "postgres"
#: Database created in every throw-away cluster.
PG_DBNAME = "tempdl_test"

_PG_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")

#: Test-speed settings: durability is pointless for a cluster deleted minutes later.
_PG_SETTINGS = {
    "listen_addresses": f"'{LOOPBACK}'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
}


def _version_key(bindir: str) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>/bin`` (numeric, not lexical)."""
    version = pathlib.Path(bindir).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def _has_pg_server(bindir: pathlib.Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _PG_REQUIRED_BINARIES)


def _pg_config_bindir() -> pathlib.Path | None:
    """``pg_config --bindir``; on Debian this may name a dir without the server."""
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return pathlib.Path(out) if out else None


def pg_bindir() -> pathlib.Path | None:
    """Directory holding initdb/pg_ctl/postgres, or None.

    Order: ``pg_config --bindir`` (honours a deliberately chosen install), the
    newest ``/usr/lib/postgresql/*/bin`` (Debian keeps the server off PATH),
    then PATH (symlinks resolved, so a ``/usr/local/bin/initdb`` link counts).
    """
    candidates: list[pathlib.Path] = []
    configured = _pg_config_bindir()
    if configured is not None:
        candidates.append(configured)
    debian_dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(pathlib.Path(d) for d in debian_dirs)
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(pathlib.Path(on_path).resolve().parent)
    return next((d for d in candidates if _has_pg_server(d)), None)


def _pg_os_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, or None to run as ourselves.

    initdb and postgres refuse to run as root; Debian's package creates the
    ``postgres`` account, ``nobody`` is the fallback on odd machines.
    """
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise LookupError("no 'postgres' or 'nobody' account to run PostgreSQL as")


def _privilege_drop_prefix(account: pwd.struct_passwd | None) -> list[str]:
    """argv prefix that runs a command as *account* (empty when not root)."""
    if account is None:
        return []
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser:
        return [runuser, "-u", account.pw_name, "--"]
    setpriv = shutil.which("setpriv") or shutil.which("setpriv", path="/usr/bin:/bin")
    if setpriv:
        return [setpriv, f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups"]
    raise LookupError("running as root but neither runuser nor setpriv is available")


def postgres_available() -> str | None:
    """None when :func:`throwaway_postgres` can work here, else why not."""
    if pg_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql"
    try:
        _privilege_drop_prefix(_pg_os_user())
    except LookupError as exc:
        return f"cannot run PostgreSQL as an unprivileged user: {exc}"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed; pip install 'psycopg[binary]'"
    return None


def skip_or_fail_without_postgres() -> None:
    """Call first in a test: skip without PostgreSQL, fail instead under CI=true."""
    _skip_or_fail(postgres_available())


@dataclasses.dataclass(frozen=True)
class PostgresInstance:
    """A running throw-away cluster. ``url`` is ready for ``create_engine``."""

    port: int
    host: str
    user: str
    dbname: str
    cluster_dir: pathlib.Path
    log_path: pathlib.Path

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database (psycopg 3 driver, no password)."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL of another database in the same cluster."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        """Create another database (e.g. one per scale-out node); return its URL."""
        _create_database(self.host, self.port, self.user, dbname)
        return self.url_for(dbname)

    def server_log(self) -> str:
        """The server's log so far, for assertions or debugging output."""
        return _tail(self.log_path, max_chars=1_000_000)


class _PgCluster:
    """Runs the PostgreSQL binaries for one cluster directory.

    Layout: ``<cluster_dir>/data`` (PGDATA), ``<cluster_dir>/sock`` (Unix
    socket; kept so no server ever touches ``/var/run/postgresql``) and
    ``<cluster_dir>/postgres.log``.
    """

    def __init__(self, bindir: pathlib.Path, cluster_dir: pathlib.Path, account: pwd.struct_passwd | None) -> None:
        self.bindir = bindir
        self.cluster_dir = cluster_dir
        self.data_dir = cluster_dir / "data"
        self.socket_dir = cluster_dir / "sock"
        self.log_path = cluster_dir / "postgres.log"
        self._prefix = _privilege_drop_prefix(account)
        self._account = account

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        # cwd inside the cluster: the unprivileged user may not be able to read ours.
        return subprocess.run(
            [*self._prefix, *argv],
            cwd=self.cluster_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def prepare(self) -> None:
        """Create the socket dir and hand the tree to the server's account."""
        self.socket_dir.mkdir()
        if self._account is not None:
            for path in (self.cluster_dir, self.socket_dir):
                os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def initdb(self) -> None:
        """Create the cluster: trust auth, C locale, no fsync (-N)."""
        done = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode != 0:
            raise EngineStartError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        settings = dict(_PG_SETTINGS, unix_socket_directories=f"'{self.socket_dir}'")
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# tests/engines.py: throw-away test cluster\n" + lines)

    def start(self, port: int) -> subprocess.CompletedProcess[str]:
        """``pg_ctl start -w``: returns once the server accepts connections (or failed)."""
        return self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(int(START_TIMEOUT_S)),
            "-o",
            f"-p {port}",
            timeout=START_TIMEOUT_S + 10,
        )

    def stop(self) -> None:
        """Immediate shutdown (no checkpoint: the data is thrown away anyway).

        Falls back to SIGKILL of the postmaster if pg_ctl cannot stop it, so a
        broken test never leaves a server behind.
        """
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self._run(
                str(self.bindir / "pg_ctl"),
                "stop",
                "-D",
                str(self.data_dir),
                "-m",
                "immediate",
                "-w",
                "-t",
                "10",
                timeout=20,
            )
        if pid_file.exists():
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


def _connect(host: str, port: int, user: str, dbname: str):  # -> psycopg.Connection
    import psycopg

    return psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True, connect_timeout=3)


def _wait_until_connectable(port: int) -> None:
    """Connect over TCP until it works: proves the URL we hand out really works."""
    errors: list[Exception] = []

    def connectable() -> bool:
        try:
            with _connect(LOOPBACK, port, PG_SUPERUSER, "postgres") as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # psycopg.OperationalError, mostly
            errors.append(exc)
            return False
        return True

    wait_until(
        connectable,
        timeout=START_TIMEOUT_S,
        what=f"PostgreSQL to accept connections on port {port}",
        detail=lambda: f"last error: {errors[-1] if errors else None}",
        error=EngineStartError,
        interval=0.1,
    )


def _create_database(host: str, port: int, user: str, dbname: str) -> None:
    from psycopg import sql

    with _connect(host, port, user, "postgres") as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def _start_on_free_port(cluster: _PgCluster) -> int:
    """Start the cluster, retrying with a new port if ours was taken meanwhile."""
    output = ""
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        done = cluster.start(port)
        if done.returncode == 0:
            _wait_until_connectable(port)
            return port
        output = done.stdout + done.stderr
        if "already in use" not in _tail(cluster.log_path) + output:
            break
    raise EngineStartError(
        f"PostgreSQL failed to start:\n{output}\n--- server log ({cluster.log_path}) ---\n{_tail(cluster.log_path)}"
    )


def _keep_log(log_path: pathlib.Path, base_dir: pathlib.Path) -> None:
    """Copy the server log into the test's base_dir before the cluster is deleted."""
    with contextlib.suppress(OSError):
        if log_path.exists():
            base_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log_path, base_dir / "postgres.log")


@contextlib.contextmanager
def throwaway_postgres(base_dir: pathlib.Path) -> Iterator[PostgresInstance]:
    """Run a private PostgreSQL cluster for the duration of the ``with`` block.

    Yields a :class:`PostgresInstance` whose ``.url`` is
    ``postgresql+psycopg://postgres@127.0.0.1:PORT/tempdl_test``. The cluster
    lives in a fresh ``/tmp/tempdl-pg-*`` dir (see :func:`_short_tmp_root` for
    why not *base_dir*); on exit it is stopped and deleted, and its log is
    copied to ``base_dir / "postgres.log"`` for post-mortems.

    Raises :class:`EngineStartError` (with the server log) if it cannot start,
    and ``RuntimeError`` if PostgreSQL is not usable here at all -- call
    :func:`skip_or_fail_without_postgres` first to skip instead.
    """
    reason = postgres_available()
    if reason is not None:
        raise RuntimeError(reason)
    bindir = pg_bindir()
    assert bindir is not None  # checked by postgres_available()
    cluster_dir = pathlib.Path(tempfile.mkdtemp(prefix="tempdl-pg-", dir=_short_tmp_root()))
    cluster = _PgCluster(bindir, cluster_dir, _pg_os_user())
    try:
        cluster.prepare()
        cluster.initdb()
        port = _start_on_free_port(cluster)
        _create_database(LOOPBACK, port, PG_SUPERUSER, PG_DBNAME)
        yield PostgresInstance(
            port=port,
            host=LOOPBACK,
            user=PG_SUPERUSER,
            dbname=PG_DBNAME,
            cluster_dir=cluster_dir,
            log_path=cluster.log_path,
        )
    finally:
        cluster.stop()
        _keep_log(cluster.log_path, base_dir)
        shutil.rmtree(cluster_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# nginx
# --------------------------------------------------------------------------

NGINX_BINARY = "/usr/sbin/nginx"
_MIME_TYPES = pathlib.Path("/etc/nginx/mime.types")

#: ``config_text_builder(port, prefix_dir) -> nginx.conf text``
NginxConfigBuilder = Callable[[int, pathlib.Path], str]


def nginx_binary() -> str | None:
    """Debian's nginx, else whatever ``nginx`` is on PATH, else None."""
    if os.access(NGINX_BINARY, os.X_OK):
        return NGINX_BINARY
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def nginx_available() -> str | None:
    """None when :func:`throwaway_nginx` can work here, else why not."""
    if nginx_binary() is None:
        return f"nginx binary ({NGINX_BINARY}) not found; apt-get install nginx"
    return None


def skip_or_fail_without_nginx() -> None:
    """Call first in a test: skip without nginx, fail instead under CI=true."""
    _skip_or_fail(nginx_available())


def _q(path: pathlib.Path | str) -> str:
    """Quote a path for nginx.conf (tmp paths are tame, but be safe)."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def minimal_nginx_config(port: int, prefix: pathlib.Path, server_block: str, *, http_extra: str = "") -> str:
    """Full nginx.conf: boilerplate around the test's own ``server`` directives.

    *server_block* is the **body** of the ``server { ... }`` block (``location``
    blocks etc.); the ``listen 127.0.0.1:PORT`` line is added here. Put
    ``upstream`` blocks or ``map``s in *http_extra* (http level). Do not set
    ``daemon``: the runner passes ``-g 'daemon off;'``. Everything nginx writes
    (logs, pid, temp files) stays inside *prefix*.

    As root the workers run as root (``user root;``) so they can read files
    under pytest's 0700 ``tmp_path``. Use as a builder with e.g.
    ``functools.partial(minimal_nginx_config, server_block=body)``.
    """
    logs, tmp = prefix / "logs", prefix / "tmp"
    user_line = "user root;\n" if os.geteuid() == 0 else ""
    mime = f"include {_q(_MIME_TYPES)};" if _MIME_TYPES.exists() else "types { text/html html; text/plain txt; }"
    return f"""# generated by tests/engines.py:minimal_nginx_config
{user_line}worker_processes 1;
pid {_q(logs / "nginx.pid")};
error_log {_q(logs / "error.log")} notice;

events {{
    worker_connections 256;
}}

http {{
    {mime}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 5s;
    server_tokens off;

    access_log {_q(logs / "access.log")} combined;

    client_body_temp_path {_q(tmp / "client_body")};
    proxy_temp_path {_q(tmp / "proxy")};
    fastcgi_temp_path {_q(tmp / "fastcgi")};
    uwsgi_temp_path {_q(tmp / "uwsgi")};
    scgi_temp_path {_q(tmp / "scgi")};

{http_extra}

    server {{
        listen {LOOPBACK}:{port};
        server_name localhost;

{server_block}
    }}
}}
"""


@dataclasses.dataclass(frozen=True)
class NginxInstance:
    """A running throw-away nginx."""

    port: int
    prefix: pathlib.Path
    config_path: pathlib.Path
    access_log_path: pathlib.Path
    error_log_path: pathlib.Path
    pid: int

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    def access_log(self) -> str:
        """Access log so far (nginx writes it unbuffered by default)."""
        return _tail(self.access_log_path, max_chars=1_000_000)

    def error_log(self) -> str:
        return _tail(self.error_log_path, max_chars=1_000_000)


def _make_nginx_prefix(base_dir: pathlib.Path) -> pathlib.Path:
    """A fresh prefix with conf/, logs/, tmp/ under *base_dir* (kept for post-mortems)."""
    base_dir.mkdir(parents=True, exist_ok=True)
    prefix = pathlib.Path(tempfile.mkdtemp(prefix="nginx-", dir=base_dir))
    for sub in ("conf", "logs", "tmp"):
        (prefix / sub).mkdir()
    return prefix


class _NginxProcess:
    """One nginx master started with ``daemon off`` in its own process group.

    The own process group lets :meth:`stop` kill the workers too if the
    master has to be SIGKILLed (workers would otherwise keep the port).
    """

    def __init__(self, binary: str, prefix: pathlib.Path, conf: pathlib.Path) -> None:
        self.error_log = prefix / "logs" / "error.log"
        self.pid_file = prefix / "logs" / "nginx.pid"
        self.output_path = prefix / "logs" / "stderr.log"
        # Start each attempt with an empty error log so diagnostics and the
        # port-clash check only see this attempt.
        self.error_log.write_bytes(b"")
        self._output = open(self.output_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [binary, "-p", f"{prefix}/", "-c", str(conf), "-e", str(self.error_log), "-g", "daemon off;"],
            cwd=prefix,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def diagnostics(self) -> str:
        return (
            f"--- nginx stdout/stderr ---\n{_tail(self.output_path)}\n"
            f"--- error log ({self.error_log}) ---\n{_tail(self.error_log)}"
        )

    def wait_until_serving(self, port: int) -> None:
        """Wait for: master alive, pid file written (= sockets bound), port accepting.

        The pid file check matters: while nginx retries a failed bind another
        process may be the one answering on the port.
        """

        def serving() -> bool:
            if self.proc.poll() is not None:
                raise EngineStartError(f"nginx exited with {self.proc.returncode}\n{self.diagnostics()}")
            return self.pid_file.exists() and _port_accepts(port)

        wait_until(
            serving,
            timeout=START_TIMEOUT_S,
            what=f"nginx to accept connections on {port}",
            detail=self.diagnostics,
            error=EngineStartError,
        )

    def port_clash(self) -> bool:
        return "Address already in use" in self.diagnostics()

    def stop(self) -> None:
        """Graceful SIGQUIT, then SIGKILL of the whole process group."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGQUIT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        finally:
            self._output.close()


@contextlib.contextmanager
def throwaway_nginx(base_dir: pathlib.Path, config_text_builder: NginxConfigBuilder) -> Iterator[NginxInstance]:
    """Run a private nginx for the duration of the ``with`` block.

    ``config_text_builder(port, prefix_dir)`` must return the complete
    nginx.conf listening on ``127.0.0.1:port`` (usually via
    :func:`minimal_nginx_config`). The prefix (conf, logs, temp files) is a
    new dir under *base_dir* and is left there so logs survive a failing
    test; pytest's ``tmp_path`` rotation cleans it up. nginx is stopped on
    exit even if the block raises.
    """
    reason = nginx_available()
    if reason is not None:
        raise RuntimeError(reason)
    binary = nginx_binary()
    assert binary is not None
    prefix = _make_nginx_prefix(base_dir)
    conf = prefix / "conf" / "nginx.conf"
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        conf.write_text(config_text_builder(port, prefix), encoding="utf-8")
        server = _NginxProcess(binary, prefix, conf)
        try:
            server.wait_until_serving(port)
            break
        except EngineStartError:
            server.stop()
            if attempt == PORT_ATTEMPTS or not server.port_clash():
                raise
    try:
        yield NginxInstance(
            port=port,
            prefix=prefix,
            config_path=conf,
            access_log_path=prefix / "logs" / "access.log",
            error_log_path=server.error_log,
            pid=server.proc.pid,
        )
    finally:
        server.stop()
