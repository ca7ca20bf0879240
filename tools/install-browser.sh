#!/usr/bin/env bash
# Installs headless Chromium for the browser test (tests/browser) from Debian's `chromium`
# package; Playwright drives it, and no browser is ever downloaded by Playwright itself.
# Idempotent: returns at once when /usr/bin/chromium is there. The package index is refreshed
# only when the install fails without it (a fresh image may have an empty or stale one).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
PACKAGES=(chromium fonts-dejavu-core)

log() { printf 'browser-tools: %s\n' "$*" >&2; }

if [[ -x $CHROMIUM ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  # Not root: say how, and let the browser tests skip (they fail under CI=true, which is root).
  log "$CHROMIUM is missing and this is not root: sudo apt-get install -y ${PACKAGES[*]}"
  [[ ${CI:-} == true ]] && exit 1
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y --no-install-recommends "${PACKAGES[@]}"; }

log "apt-get install ${PACKAGES[*]}"
if ! install; then
  log "refreshing the package index, then retrying"
  apt-get update
  install
fi
test -x "$CHROMIUM" || { log "$CHROMIUM is still missing after the install"; exit 1; }
