#!/usr/bin/env bash
# Makes the images' base where no registry can be pulled: a minimal Debian bookworm with
# python3.11 from Debian's own packages (debootstrap), imported into the container engine's
# storage, and prints its reference (for BASE_IMAGE). The tag is a hash of this file, so the
# base is rebuilt only when this recipe changes; otherwise it returns at once.
#   CONTAINER_ENGINE   podman (default) or docker
#   DEBIAN_MIRROR      default http://deb.debian.org/debian
# Needs root and debootstrap (tools/install-podman.sh installs it); about a minute and 200 MB.
set -euo pipefail

ENGINE="${CONTAINER_ENGINE:-podman}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
# python3.11-venv: the images' build stage makes its virtualenvs with it; python3-pip and
# ca-certificates: what pip needs to reach PyPI over TLS in that stage.
PACKAGES=python3.11,python3.11-venv,python3-pip,ca-certificates
NAME=localhost/movierec/base
TAG="$SUITE-$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
IMAGE="$NAME:$TAG"

log() { printf 'base-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v "$ENGINE" >/dev/null 2>&1 || die "$ENGINE is not installed"
# One build at a time; a second caller waits and then finds the image made.
exec 9>"${TMPDIR:-/tmp}/movierec-base-image.lock"
flock 9
if "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || die "debootstrap needs root (or pass BASE_IMAGE=<an image with python3.11>)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing: make podman-tools installs it"

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/movierec-base.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
log "debootstrap --variant=minbase $SUITE with $PACKAGES (about a minute)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 ||
  { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
rm -f "$rootfs.log"
# What an official Debian image leaves out too: downloaded .debs and package lists (~95 MB).
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*

tar --numeric-owner -C "$rootfs" -c . | "$ENGINE" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --quiet --message "debootstrap --variant=minbase --include=$PACKAGES $SUITE" \
  - "$IMAGE" >/dev/null
log "made $IMAGE ($("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE") bytes)"
# Bases of older recipes go, unless images built on them still hold them.
for old in $("$ENGINE" images --format '{{.Repository}}:{{.Tag}}' "$NAME"); do
  [[ $old == "$IMAGE" ]] || "$ENGINE" rmi "$old" >/dev/null 2>&1 || true
done
echo "$IMAGE"
