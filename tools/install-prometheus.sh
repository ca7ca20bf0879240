#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian's `prometheus` package, 2.42) for the observability
# tests (tests/observability): `promtool check/test rules` on the chart's rules, and a real
# Prometheus server on loopback scraping a real `movierec serve`. The tests start their own
# server on a free port with a temporary data dir; the package's system service is not wanted,
# so it is kept from starting during the install (policy-rc.d) and never enabled by us.
# Idempotent: returns at once when both binaries are there.
set -euo pipefail

PACKAGES=(prometheus)
APT_OPTS=(-y -qq --no-install-recommends -o DPkg::Lock::Timeout=600)

log() { printf 'prometheus-tools: %s\n' "$*" >&2; }

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  # Not root: say how, and let the tests skip (they fail under CI=true, which runs as root).
  log "prometheus/promtool are missing and this is not root: sudo apt-get install -y ${PACKAGES[*]}"
  [[ ${CI:-} == true ]] && exit 1
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Keep the package's daemon from being started by its maintainer scripts (no init system runs
# here anyway; on a machine with one this avoids a stray server on :9090).
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  trap 'rm -f "$POLICY"' EXIT
fi

install() { apt-get install "${APT_OPTS[@]}" "${PACKAGES[@]}"; }

log "apt-get install ${PACKAGES[*]}"
if ! install; then
  log "refreshing the package index, then retrying"
  apt-get update -qq -o DPkg::Lock::Timeout=600
  install
fi
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  log "prometheus/promtool are still missing after the install"
  exit 1
fi
log "ready: $(prometheus --version 2>&1 | head -1)"
