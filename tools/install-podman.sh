#!/usr/bin/env bash
# Installs podman, runc and debootstrap from Debian's packages and sets podman up the way a
# container starts on these hosts (tools/podman/containers.conf: runc, cgroupfs, no default
# ulimits), for `make test-images` and `make images`. Idempotent: with the packages there and
# the settings in place it returns at once. Not root, or not Debian: says so in one line and
# exits 0, so the container tests skip with that reason (under CI=true: exits 1).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(podman runc debootstrap)
SETTINGS="$ROOT/tools/podman/containers.conf"
INSTALLED_SETTINGS=/etc/containers/containers.conf.d/50-movierec-runc-cgroupfs.conf

log() { printf 'podman-tools: %s\n' "$*" >&2; }
give_up() {
  log "$1"
  [[ ${CI:-} == true ]] && exit 1
  exit 0
}

missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ${#missing[@]} -eq 0 ]] && cmp -s "$SETTINGS" "$INSTALLED_SETTINGS"; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  give_up "not root, so podman is left as it is (missing: ${missing[*]:-none}); as root: make podman-tools"
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  command -v apt-get >/dev/null 2>&1 || give_up "no apt-get: install ${missing[*]} with this system's package manager"
  export DEBIAN_FRONTEND=noninteractive
  # No recommends: they would bring crun (which fails here) and rootless helpers not needed as root.
  install() { apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${PACKAGES[@]}"; }
  log "apt-get install ${PACKAGES[*]}"
  if ! install >/dev/null; then
    log "refreshing the package index, then retrying"
    apt-get update -qq -o DPkg::Lock::Timeout=600
    install >/dev/null
  fi
fi

install -D -m 0644 "$SETTINGS" "$INSTALLED_SETTINGS"
log "podman $(podman version --format '{{.Client.Version}}') with runc and cgroupfs ($INSTALLED_SETTINGS)"
