#!/usr/bin/env bash
# The whole stack on a local kind cluster: `kind.sh up | images | deploy | ingest | down`.
#   up      create the cluster from k8s/kind-cluster.yaml (kept if it already exists)
#   images  build both images with a fixed tag (the chart's appVersion) by tools/build-images.sh,
#           the build `make test` runs (BASE_IMAGE passes through), and `kind load` them
#   deploy  images, then the official Qdrant chart (pinned) with an API-key Secret, then
#           charts/movierec with values-kind.yaml
#   ingest  run the ingest once (a Job from the suspended CronJob) and wait for it
#   down    delete the cluster
# `make kind-e2e` drives these from tests/e2e and checks the answers. DRY_RUN=1 prints only.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KIND_CLUSTER="${KIND_CLUSTER:-movierec}"
KIND_CONFIG="${KIND_CONFIG:-$PROJECT_ROOT/k8s/kind-cluster.yaml}"
VALUES_FILE="${VALUES_FILE:-$CHART_DIR/values-kind.yaml}"
INGEST_TIMEOUT="${INGEST_TIMEOUT:-1200}"
# A kubeconfig of its own, so the person's ~/.kube/config and current context stay untouched.
KIND_KUBECONFIG="${KIND_KUBECONFIG:-$PROJECT_ROOT/.tools/kind/kubeconfig}"
export KUBECONFIG="$KIND_KUBECONFIG"

# Fixed, never "latest": the chart's appVersion, which is also the chart's default tag.
IMAGE_TAG="${IMAGE_TAG:-$(chart_app_version)}"
INGEST_IMAGE="movierec/ingest:$IMAGE_TAG"
SERVICE_IMAGE="movierec/recommender:$IMAGE_TAG"

check_kind_prerequisites() {
  local with_docker=$1
  need_cmd kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  if [[ $with_docker == 1 ]]; then
    need_cmd docker "Docker Engine or Docker Desktop, running"
  fi
  need_cmd kubectl "tools/install-k8s-tools.sh puts it in .tools/bin"
  need_cmd helm "tools/install-k8s-tools.sh puts it in .tools/bin"
  need_cmd python3 "generates the Qdrant API keys"
  [[ $IMAGE_TAG == latest || -z $IMAGE_TAG ]] && MISSING+=("IMAGE_TAG: a fixed tag, not '${IMAGE_TAG}'")
  check_prerequisites "the kind cluster"
  if [[ $with_docker == 1 ]] && ! is_dry_run && ! docker info >/dev/null 2>&1; then
    die "docker is installed but its engine does not answer (docker info failed): start Docker first"
  fi
}

cluster_exists() {
  kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"
}

# use_cluster: point KUBECONFIG at the cluster (re-exported if the file went missing).
use_cluster() {
  if is_dry_run || [[ -s $KIND_KUBECONFIG ]]; then return 0; fi
  cluster_exists || die "no kind cluster '$KIND_CLUSTER': run make kind-up first"
  run kind export kubeconfig --name "$KIND_CLUSTER" --kubeconfig "$KIND_KUBECONFIG"
}

cmd_up() {
  check_kind_prerequisites 1
  if ! is_dry_run && cluster_exists; then
    log "kind cluster $KIND_CLUSTER already exists: kept"
    run kind export kubeconfig --name "$KIND_CLUSTER" --kubeconfig "$KIND_KUBECONFIG"
  else
    log "kind: create cluster $KIND_CLUSTER from ${KIND_CONFIG#"$PROJECT_ROOT"/}"
    run mkdir -p "$(dirname "$KIND_KUBECONFIG")"
    run kind create cluster --name "$KIND_CLUSTER" --config "$KIND_CONFIG" \
      --kubeconfig "$KIND_KUBECONFIG" --wait 5m
  fi
  run kubectl wait --for=condition=Ready nodes --all --timeout=5m
}

cmd_images() {
  check_kind_prerequisites 1
  log "Images $INGEST_IMAGE and $SERVICE_IMAGE, loaded into kind"
  run env CONTAINER_ENGINE=docker IMAGE_TAG="$IMAGE_TAG" ${BASE_IMAGE:+"BASE_IMAGE=$BASE_IMAGE"} \
    bash "$PROJECT_ROOT/tools/build-images.sh"
  run kind load docker-image --name "$KIND_CLUSTER" "$INGEST_IMAGE" "$SERVICE_IMAGE"
}

cmd_deploy() {
  cmd_images
  use_cluster

  log "Qdrant API keys: Secret $QDRANT_SECRET in namespaces $QDRANT_NAMESPACE and $APP_NAMESPACE"
  apply_namespaces
  prepare_api_keys "$QDRANT_NAMESPACE"
  apply_api_key_secret "$QDRANT_NAMESPACE"
  apply_api_key_secret "$APP_NAMESPACE"

  log "Official Qdrant chart $QDRANT_CHART_VERSION: release $QDRANT_RELEASE in $QDRANT_NAMESPACE"
  install_official_qdrant kind

  log "Helm: $APP_RELEASE in $APP_NAMESPACE with $(basename "$VALUES_FILE")"
  # No --wait: the service turns ready only after the first ingest (`kind.sh ingest`).
  run helm upgrade --install "$APP_RELEASE" "$CHART_DIR" --namespace "$APP_NAMESPACE" \
    -f "$VALUES_FILE" \
    --set-string "images.ingest.tag=$IMAGE_TAG" --set-string "images.service.tag=$IMAGE_TAG"
}

cmd_ingest() {
  check_kind_prerequisites 0
  use_cluster
  log "Ingest: a Job from cronjob/${APP_RELEASE}-ingest"
  local job
  job="$(create_ingest_job)"
  wait_for_job "$APP_NAMESPACE" "$job" "$INGEST_TIMEOUT"
  wait_for_rollout "$APP_NAMESPACE" "deployment/$APP_RELEASE" 5m
  log "Ready: curl http://127.0.0.1:8080/healthz (values-kind.yaml exposes node port 30080, kind maps it to 8080)"
}

cmd_down() {
  need_cmd kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  check_prerequisites "deleting the kind cluster"
  log "kind: delete cluster $KIND_CLUSTER"
  run kind delete cluster --name "$KIND_CLUSTER" --kubeconfig "$KIND_KUBECONFIG"
  run rm -f "$KIND_KUBECONFIG"
}

main() {
  local command="${1:-}"
  case "$command" in
    up) cmd_up ;;
    images) cmd_images ;;
    deploy) cmd_deploy ;;
    ingest) cmd_ingest ;;
    down) cmd_down ;;
    *)
      sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
      exit 2
      ;;
  esac
}

main "$@"
