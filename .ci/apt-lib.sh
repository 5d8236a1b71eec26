# Shared by .ci/install-*.sh (sourced, never run): install missing Debian packages quietly.
# The sourcing script defines log and die first.

apt_log=""

# Run an apt-get command quietly; on failure show its output and return non-zero.
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

# Re-run the calling script under `sudo -n` when not root; die when that is impossible.
become_root_or_die() {
  local script=$1
  shift
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      exec sudo -n -- "$script" "$@"
    fi
    die "need root (or passwordless sudo) to install Debian packages"
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install the packages by hand"
}

# apt-get update once, then install the named packages; dies with apt's output on failure.
install_debian_packages() {
  apt_log=$(mktemp)
  log "installing $* (Debian packages)"
  apt_update_with_retries || die "apt-get update failed; are the Debian mirrors reachable?"
  apt_quiet install -y --no-install-recommends "$@" || die "apt-get install $* failed (see output above)"
  rm -f "$apt_log"
}
