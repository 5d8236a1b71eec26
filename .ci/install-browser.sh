#!/usr/bin/env bash
# Install the browser the dashboard test drives (tests/live/test_dashboard_browser.py): Debian 12's
# `chromium` (/usr/bin/chromium), which Playwright launches through executable_path, so
# `playwright install` and its downloads are never needed. Also `fonts-wqy-microhei`, a small
# CJK font (1.6 MB): the dashboard is bilingual, and without one the screenshots show boxes.
#
# Idempotent and quiet: when both are present it prints nothing, needs no root and touches no
# package lists. Otherwise it runs `apt-get update` once and installs only what is missing
# (re-running itself under `sudo -n` when not root). Exits non-zero with a clear message if that
# is impossible.
set -euo pipefail

# shellcheck source=apt-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-lib.sh"

log() { printf 'install-browser: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have_chromium() { [[ -x /usr/bin/chromium ]]; }
have_cjk_font() { [[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]]; }

missing_packages() {
  have_chromium || echo chromium
  have_cjk_font || echo fonts-wqy-microhei
}



main() {
  local -a packages
  mapfile -t packages < <(missing_packages)
  if ((${#packages[@]} == 0)); then return 0; fi

  become_root_or_die "$0" "$@"

  install_debian_packages "${packages[@]}"

  have_chromium || die "/usr/bin/chromium still missing after installing chromium"
  /usr/bin/chromium --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1 \
    || die "/usr/bin/chromium is installed but does not start"
  log "done"
}

# Sourcing this file (e.g. to test single functions) must not install anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
