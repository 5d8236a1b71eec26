#!/usr/bin/env bash
# Install the real engines the test suite runs against (tests/engines.py):
# PostgreSQL server binaries (initdb, pg_ctl, postgres) and nginx, from
# Debian 12 packages `postgresql` and `nginx`.
#
# Idempotent and quiet: when both are present it prints nothing, needs no
# root and touches no package lists. Otherwise it runs `apt-get update` once
# and installs only what is missing (re-running itself under `sudo -n` when
# not root). Exits non-zero with a clear message if that is impossible.
#
# Package names: on Debian 12 `nginx` ships /usr/sbin/nginx (`nginx-light`
# is only a meta-package adding the echo module); `postgresql` pulls in the
# current server, postgresql-15. Services are kept from starting during the
# install (temporary policy-rc.d) because the tests run private instances;
# a system nginx grabbing :80 could even make the install fail.
set -euo pipefail

log() { printf 'install-engines: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have_postgres() {
  local bindir
  for bindir in /usr/lib/postgresql/*/bin; do
    if [[ -x $bindir/initdb && -x $bindir/pg_ctl && -x $bindir/postgres ]]; then
      return 0
    fi
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

have_nginx() {
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1
}

missing_packages() {
  have_postgres || echo postgresql
  have_nginx || echo nginx
}

# Deny service starts for the duration of the install, unless the machine
# already has its own policy (e.g. Docker images ship one). Removed on exit.
POLICY_RC_D=/usr/sbin/policy-rc.d
created_policy=""
deny_service_starts() {
  if [[ ! -e $POLICY_RC_D ]]; then
    printf '#!/bin/sh\n# temporary, from .ci/install-engines.sh\nexit 101\n' >"$POLICY_RC_D"
    chmod 755 "$POLICY_RC_D"
    created_policy=$POLICY_RC_D
  fi
}
cleanup() {
  if [[ -n $created_policy ]]; then rm -f "$created_policy"; fi
  if [[ -n ${apt_log:-} ]]; then rm -f "$apt_log"; fi
}

# Run an apt-get command quietly; on failure show its output and die.
apt_quiet() {
  if ! DEBIAN_FRONTEND=noninteractive apt-get -qq -o Dpkg::Use-Pty=0 "$@" >>"$apt_log" 2>&1; then
    tail -n 40 "$apt_log" >&2
    return 1
  fi
}

apt_update_with_retries() {
  local attempt
  for attempt in 1 2 3; do
    apt_quiet update && return 0
    log "apt-get update failed (attempt $attempt/3)"
    sleep $((attempt * 5))
  done
  return 1
}

main() {
  local -a packages
  mapfile -t packages < <(missing_packages)
  if ((${#packages[@]} == 0)); then return 0; fi

  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      exec sudo -n -- "$0" "$@"
    fi
    die "need root (or passwordless sudo) to install: ${packages[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 \
    || die "apt-get not found; install PostgreSQL server binaries and nginx by hand (${packages[*]})"

  apt_log=$(mktemp)
  trap cleanup EXIT
  deny_service_starts

  log "installing ${packages[*]} (Debian packages)"
  apt_update_with_retries || die "apt-get update failed; are the Debian mirrors reachable?"
  apt_quiet install -y --no-install-recommends "${packages[@]}" \
    || die "apt-get install ${packages[*]} failed (see output above)"

  have_postgres || die "PostgreSQL server binaries (initdb, pg_ctl) still missing after installing postgresql"
  have_nginx || die "/usr/sbin/nginx still missing after installing nginx"
  log "done"
}

# Sourcing this file (e.g. to test single functions) must not install anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
