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

# shellcheck source=apt-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-lib.sh"

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
}


main() {
  local -a packages
  mapfile -t packages < <(missing_packages)
  if ((${#packages[@]} == 0)); then return 0; fi

  become_root_or_die "$0" "$@"

  trap cleanup EXIT
  deny_service_starts

  install_debian_packages "${packages[@]}"

  have_postgres || die "PostgreSQL server binaries (initdb, pg_ctl) still missing after installing postgresql"
  have_nginx || die "/usr/sbin/nginx still missing after installing nginx"
  log "done"
}

# Sourcing this file (e.g. to test single functions) must not install anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
