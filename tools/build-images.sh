#!/usr/bin/env bash
# Builds both images from the repository's Dockerfiles with docker or podman: the one build path
# of `make images`, `make test-images` and `scripts/kind.sh images`.
#   CONTAINER_ENGINE   docker or podman (default: docker when its engine answers, else podman)
#   IMAGE_TAG          required, a fixed version (the chart's appVersion), never "latest"
#   IMAGE_PREFIX       prepended to movierec/..., e.g. "registry.example.com/" (default none)
#   BASE_IMAGE         base of both stages (default: the Dockerfiles' pinned python image);
#                      "local": the one tools/base-image.sh makes from Debian's packages
#   IMAGE_ID_DIR       when set, each image's ID is written there (files ingest, recommender):
#                      what a caller runs is then what it built, whoever else builds these tags
# Prints the two image references, ingest first. The layer cache keeps what did not change:
# both images share their first layers, and a dependency layer is rebuilt only with its lock.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf 'images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

engine="${CONTAINER_ENGINE:-}"
if [[ -z $engine ]]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  else
    die "neither a running Docker engine nor podman was found (podman: make podman-tools)"
  fi
fi
tag="${IMAGE_TAG:-}"
[[ -n $tag && $tag != latest ]] || die "IMAGE_TAG must be a fixed version, not '${tag}'"

if [[ ${BASE_IMAGE:-} == local ]]; then
  BASE_IMAGE="$(CONTAINER_ENGINE="$engine" bash "$ROOT/tools/base-image.sh")"
fi
build_args=()
[[ -n ${BASE_IMAGE:-} ]] && build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
# pip in the build trusts the host's CA bundle (a TLS-inspecting proxy's CA, say): mounted for
# the build's RUN steps only, so it is never part of a layer. docker build has no such mount.
HOST_CA=/etc/ssl/certs/ca-certificates.crt
if [[ $engine == podman ]]; then
  [[ -r $HOST_CA ]] && build_args+=(-v "$HOST_CA:$HOST_CA:ro")
  # Docker's image format, as a registry or `kind load` expects (it also keeps HEALTHCHECK).
  build_args+=(--format docker)
fi

images=()
for spec in ingest:jobs/ingest recommender:services/recommender; do
  image="${IMAGE_PREFIX:-}movierec/${spec%%:*}:$tag"
  log "$engine build $image${BASE_IMAGE:+ on $BASE_IMAGE}"
  id_args=()
  [[ -n ${IMAGE_ID_DIR:-} ]] && id_args=(--iidfile "$IMAGE_ID_DIR/${spec%%:*}")
  "$engine" build --quiet "${build_args[@]}" "${id_args[@]}" -f "$ROOT/${spec#*:}/Dockerfile" \
    -t "$image" "$ROOT" >/dev/null
  images+=("$image")
done
printf '%s\n' "${images[@]}"
