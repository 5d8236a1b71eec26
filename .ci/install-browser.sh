#!/usr/bin/env bash
# Install the browser the dashboard test drives (tests/test_dashboard_browser.py): Debian 12's
# `chromium` (/usr/bin/chromium), which Playwright launches through executable_path, so
# `playwright install` and its downloads are never needed. Also `fonts-wqy-microhei`, a small
# CJK font (1.6 MB): the dashboard is bilingual, and without one the screenshots show boxes.
#
# Idempotent and quiet: when both are present it prints nothing, needs no root and touches no
# package lists. Otherwise it runs `apt-get update` once and installs only what is missing
# (re-running itself under `sudo -n` when not root). Exits non-zero with a clear message if that
# is impossible.
set -euo pipefail

log() { printf 'install-browser: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have_chromium() { [[ -x /usr/bin/chromium ]]; }
have_cjk_font() { [[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]]; }

missing_packages() {
  have_chromium || echo chromium
  have_cjk_font || echo fonts-wqy-microhei
}

apt_log=""
cleanup() { if [[ -n $apt_log ]]; then rm -f "$apt_log"; fi; }

# Run an apt-get command quietly; on failure show its output and fail.
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
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install Chromium as /usr/bin/chromium by hand"

  apt_log=$(mktemp)
  trap cleanup EXIT
  log "installing ${packages[*]} (Debian packages)"
  apt_update_with_retries || die "apt-get update failed; are the Debian mirrors reachable?"
  apt_quiet install -y --no-install-recommends "${packages[@]}" \
    || die "apt-get install ${packages[*]} failed (see output above)"

  have_chromium || die "/usr/bin/chromium still missing after installing chromium"
  /usr/bin/chromium --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1 \
    || die "/usr/bin/chromium is installed but does not start"
  log "done"
}

# Sourcing this file (e.g. to test single functions) must not install anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
