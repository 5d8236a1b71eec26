#!/usr/bin/env bash
# tempdl benchmark: one command, nothing left running afterwards.
#   bench/run.sh [--huge] [--only nginx,tornado,fastapi,tempdl] [--no-tempdl]
# Prints one table and writes it to bench/out/latest.md. See bench/README.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
VENV="$BENCH_DIR/.venv"
START=$(date +%s)

log() { printf '[bench] %s\n' "$*" >&2; }

# --- system packages: nginx and wrk from Debian, only when missing -------------
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt-get)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's nginx package starts a system nginx on port 80 on install; the benchmark never uses it.

# --- venv of our own, rebuilt only when a requirements file changes ------------
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$(cat "$REPO_DIR/requirements.txt" "$BENCH_DIR/requirements-bench.txt" 2>/dev/null | sha256sum | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "preparing $VENV"
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$REPO_DIR/requirements.txt" -r "$BENCH_DIR/requirements-bench.txt"
    echo "$stamp" > "$VENV/.stamp"
fi

# --- run, with cleanup of every process the harness started --------------------
WORK="$(mktemp -d /tmp/tempdl-bench.XXXXXX)"
HARNESS_PID=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    if [ -n "$HARNESS_PID" ] && kill -0 "$HARNESS_PID" 2>/dev/null; then
        kill -TERM "$HARNESS_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$HARNESS_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$HARNESS_PID" 2>/dev/null || true
    fi
    # Every server and client runs in its own process group; the harness records
    # each group id here, so leftovers are ended by id, never by name.
    if [ -f "$WORK/pids" ]; then
        while read -r pgid; do
            [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
        done < "$WORK/pids"
    fi
    rm -rf "$WORK"
    log "done in $(( $(date +%s) - START ))s"
    exit "$rc"
}
trap cleanup EXIT INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$BENCH_DIR/out"
# The harness (the clients) runs on CPU 1; it pins each server to CPU 0 itself.
taskset -c 1 "$VENV/bin/python" "$BENCH_DIR/harness.py" --work "$WORK" --repo "$REPO_DIR" "$@" &
HARNESS_PID=$!
wait "$HARNESS_PID"
