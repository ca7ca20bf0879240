#!/usr/bin/env bash
# `make deploy`: movierec on OVHcloud Managed Kubernetes, with Qdrant as a Qdrant Hybrid Cloud
# cluster (QDRANT_MODE=hybrid, the default) or the official Qdrant chart on the same cluster
# (QDRANT_MODE=self-hosted). DRY_RUN=1 prints every command in order and runs none.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QDRANT_MODE="${QDRANT_MODE:-hybrid}"
INFRA_DIR="${INFRA_DIR:-$PROJECT_ROOT/infra}"
KUBECONFIG_FILE="${KUBECONFIG_FILE:-$INFRA_DIR/.generated/kubeconfig}"
VALUES_FILE="${VALUES_FILE:-$CHART_DIR/values-ovh.yaml}"
INGEST_TIMEOUT="${INGEST_TIMEOUT:-1800}"
ADDRESS_TIMEOUT="${ADDRESS_TIMEOUT:-600}"
IMAGE_TAG="${IMAGE_TAG:-$(chart_app_version)}"
REGISTRY_SECRET="${REGISTRY_SECRET:-movierec-registry}"

usage() {
  cat <<EOF
usage: scripts/deploy.sh            (make deploy [QDRANT_MODE=self-hosted] [DRY_RUN=1])

Builds and pushes both images to \$IMAGE_REGISTRY, creates (or updates) the OVHcloud
Kubernetes cluster with Terraform (infra/), sets up Qdrant (Hybrid Cloud or self-hosted),
installs charts/movierec, runs the first ingest and prints the service's address.
Environment: see README.md, section "Deploy".
EOF
}

check_deploy_prerequisites() {
  need_cloud_env
  need_env IMAGE_REGISTRY "registry (and path) the cluster pulls the images from, e.g. xxxx.c1.gra9.container-registry.ovh.net/<project>"
  if [[ -n "${IMAGE_REGISTRY_USER:-}${IMAGE_REGISTRY_PASSWORD:-}" ]]; then
    need_env IMAGE_REGISTRY_USER "user of the private registry (with IMAGE_REGISTRY_PASSWORD)"
    need_env IMAGE_REGISTRY_PASSWORD "password of the private registry (with IMAGE_REGISTRY_USER)"
  fi
  if [[ -z $IMAGE_TAG || $IMAGE_TAG == latest ]]; then
    MISSING+=("IMAGE_TAG: a fixed tag, not '$IMAGE_TAG'")
  fi
  need_cmd terraform "https://developer.hashicorp.com/terraform/install, >= 1.7"
  need_cmd kubectl "tools/install-k8s-tools.sh puts it in .tools/bin"
  need_cmd helm "tools/install-k8s-tools.sh puts it in .tools/bin"
  need_cmd python3 "generates the Qdrant API keys"
  if [[ "${SKIP_IMAGE_BUILD:-0}" != 1 ]]; then
    need_cmd docker "builds and pushes the images (or SKIP_IMAGE_BUILD=1 if they are pushed already)"
  fi
  check_prerequisites "make deploy (QDRANT_MODE=$QDRANT_MODE)"
}

# Images first: a failing build costs nothing, a half-created cloud stack does.
build_and_push_images() {
  local ingest="$IMAGE_REGISTRY/movierec/ingest:$IMAGE_TAG"
  local service="$IMAGE_REGISTRY/movierec/recommender:$IMAGE_TAG"
  if [[ "${SKIP_IMAGE_BUILD:-0}" == 1 ]]; then
    note "SKIP_IMAGE_BUILD=1: using $ingest and $service as already pushed"
    return 0
  fi
  run docker build -f "$PROJECT_ROOT/jobs/ingest/Dockerfile" -t "$ingest" "$PROJECT_ROOT"
  run docker build -f "$PROJECT_ROOT/services/recommender/Dockerfile" -t "$service" "$PROJECT_ROOT"
  run docker push "$ingest"
  run docker push "$service"
}

terraform_apply() {
  local cluster_enabled=$1 approve=()
  if [[ "${AUTO_APPROVE:-0}" == 1 ]]; then approve=(-auto-approve); fi
  run terraform -chdir="$INFRA_DIR" apply -input=false ${approve[@]+"${approve[@]}"} \
    -var "ovh_project_id=$OVH_CLOUD_PROJECT_SERVICE" \
    -var "ovh_endpoint=${OVH_ENDPOINT:-ovh-eu}" \
    -var "qdrant_mode=$QDRANT_MODE" \
    -var "qdrant_namespace=$QDRANT_NAMESPACE" \
    -var "qdrant_api_key_secret=$QDRANT_SECRET" \
    -var "qdrant_cluster_enabled=$cluster_enabled" \
    -var "kubeconfig_path=$KUBECONFIG_FILE"
}

# The bootstrap commands install the Qdrant operator and cloud agent; they carry one-time
# credentials, so they run once: skipped when the agent's release is already there.
bootstrap_hybrid_environment() {
  local script
  if ! is_dry_run && helm -n "$QDRANT_NAMESPACE" status qdrant-cloud-agent >/dev/null 2>&1; then
    log "Hybrid Cloud agent already installed in $QDRANT_NAMESPACE: bootstrap skipped"
    return 0
  fi
  script="$(capture "$INFRA_DIR/.generated/hybrid-bootstrap.sh" \
    terraform -chdir="$INFRA_DIR" output -raw hybrid_bootstrap_script_path)"
  if ! is_dry_run && [[ ! -f $script ]]; then
    die "no bootstrap script at '$script': set bootstrap_commands_version of the environment in infra/main.tf to a new number to generate new commands, then re-run"
  fi
  note "skipped on re-runs once the qdrant-cloud-agent release exists in $QDRANT_NAMESPACE"
  run bash "$script"
  if ! run kubectl -n "$QDRANT_NAMESPACE" wait --for=condition=Available deployment --all --timeout=600s; then
    show_diagnostics "$QDRANT_NAMESPACE"
    die "the Hybrid Cloud operator/agent did not become available (logs and events above)"
  fi
}

# apply_registry_secret: a docker-registry Secret for a private registry, built from
# IMAGE_REGISTRY_USER / IMAGE_REGISTRY_PASSWORD in a 0600 file (never on a command line).
apply_registry_secret() {
  if [[ -z "${IMAGE_REGISTRY_USER:-}" ]]; then return 0; fi
  if ! is_dry_run; then
    (
      umask 077
      python3 - "$IMAGE_REGISTRY" >"$KEY_DIR/dockerconfig.json" <<'PY'
import base64, json, os, sys
host = sys.argv[1].split("/")[0]
user, password = os.environ["IMAGE_REGISTRY_USER"], os.environ["IMAGE_REGISTRY_PASSWORD"]
auth = base64.b64encode(f"{user}:{password}".encode()).decode()
json.dump({"auths": {host: {"username": user, "password": password, "auth": auth}}}, sys.stdout)
PY
    )
  fi
  run_sh "kubectl -n $APP_NAMESPACE create secret generic $REGISTRY_SECRET --type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=$KEY_DIR/dockerconfig.json --dry-run=client -o yaml | kubectl apply -f -"
}

# wait_for_address: the LoadBalancer's IP or hostname once OVHcloud has assigned it.
# apply_snapshot_s3_secret: self-hosted mode; Secret qdrant-snapshots-s3 (bucket, region,
# endpoint, S3 credential) in the Qdrant namespace, from the 0600 file Terraform wrote. The
# official chart's values-ovh.yaml points Qdrant's snapshots_config at it.
apply_snapshot_s3_secret() {
  local env_file
  env_file="$(capture "$INFRA_DIR/.generated/qdrant-snapshots-s3.env" \
    terraform -chdir="$INFRA_DIR" output -raw qdrant_snapshots_s3_env_path)"
  if ! is_dry_run && [[ ! -s $env_file ]]; then
    die "no snapshot bucket credentials at '$env_file': run terraform apply with qdrant_mode=self-hosted first"
  fi
  run_sh "kubectl -n $QDRANT_NAMESPACE create secret generic qdrant-snapshots-s3 --from-env-file=$env_file --dry-run=client -o yaml | kubectl apply -f -"
}

# replication_values: --set-string arguments for the movierec chart's qdrant.shards,
# qdrant.replicationFactor and qdrant.writeConsistency, from Terraform (one place for the numbers).
replication_values() {
  local settings
  settings="$(capture '{"shards": "", "replicationFactor": "2", "writeConsistency": "1"}' \
    terraform -chdir="$INFRA_DIR" output -json movierec_qdrant_settings)"
  python3 -c 'import json, sys
for key, value in json.loads(sys.argv[1]).items():
    print(f"qdrant.{key}={value}")' "$settings"
}

wait_for_address() {
  local jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}'
  printf '+ %s\n' "kubectl -n $APP_NAMESPACE get service $APP_RELEASE -o jsonpath='$jsonpath' every 10s, at most ${ADDRESS_TIMEOUT}s" >&3
  if is_dry_run; then
    printf '%s' '<load balancer address>'
    return 0
  fi
  local deadline=$((SECONDS + ADDRESS_TIMEOUT)) address
  while ((SECONDS < deadline)); do
    address="$(kubectl -n "$APP_NAMESPACE" get service "$APP_RELEASE" -o "jsonpath=$jsonpath" 2>/dev/null || true)"
    if [[ -n $address ]]; then
      printf '%s' "$address"
      return 0
    fi
    sleep 10
  done
  show_diagnostics "$APP_NAMESPACE"
  die "service/$APP_RELEASE got no external address within ${ADDRESS_TIMEOUT}s (is service.expose.type LoadBalancer in $(basename "$VALUES_FILE")?)"
}

main() {
  if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    usage
    exit 0
  fi
  check_deploy_prerequisites
  export KUBECONFIG="$KUBECONFIG_FILE"
  is_dry_run && note "DRY_RUN=1: printing the plan (QDRANT_MODE=$QDRANT_MODE); nothing is run"

  log "Images: build and push $IMAGE_REGISTRY/movierec/{ingest,recommender}:$IMAGE_TAG"
  build_and_push_images

  log "Terraform: OVHcloud Kubernetes cluster and node pool$([[ $QDRANT_MODE == hybrid ]] && echo ', Qdrant Hybrid Cloud environment')"
  run terraform -chdir="$INFRA_DIR" init -input=false
  # First pass without the Qdrant cluster (it needs the bootstrap and the Secret below); on a
  # re-run the cluster is in the state already and must stay in the plan, or it would be deleted.
  local first_pass=false
  if [[ $QDRANT_MODE == hybrid ]] &&
    capture "" terraform -chdir="$INFRA_DIR" state list 2>/dev/null | grep '^qdrant-cloud_accounts_cluster\.movierec' >/dev/null; then
    first_pass=true
  fi
  terraform_apply "$first_pass"
  note "KUBECONFIG=$KUBECONFIG_FILE (written by Terraform, mode 0600)"
  run kubectl wait --for=condition=Ready nodes --all --timeout=15m
  apply_namespaces

  if [[ $QDRANT_MODE == hybrid ]]; then
    log "Hybrid Cloud bootstrap: Qdrant operator and cloud agent into namespace $QDRANT_NAMESPACE"
    bootstrap_hybrid_environment
  fi

  log "Secrets: $QDRANT_SECRET in namespaces $QDRANT_NAMESPACE and $APP_NAMESPACE"
  prepare_api_keys "$QDRANT_NAMESPACE"
  apply_api_key_secret "$QDRANT_NAMESPACE"
  apply_api_key_secret "$APP_NAMESPACE"
  apply_registry_secret

  if [[ $QDRANT_MODE == hybrid ]]; then
    log "Terraform: Qdrant cluster in the Hybrid Cloud environment"
    terraform_apply true
    apply_qdrant_network_policy
  else
    log "Qdrant snapshots: Secret qdrant-snapshots-s3 in $QDRANT_NAMESPACE (Object Storage bucket from Terraform)"
    apply_snapshot_s3_secret
    log "Official Qdrant chart $QDRANT_CHART_VERSION: release $QDRANT_RELEASE in $QDRANT_NAMESPACE"
    install_official_qdrant ovh
  fi
  local qdrant_url url_placeholder="http://$QDRANT_RELEASE.$QDRANT_NAMESPACE.svc:6333"
  [[ $QDRANT_MODE == hybrid ]] && url_placeholder="http://qdrant-<cluster id>.$QDRANT_NAMESPACE.svc:6333"
  qdrant_url="$(capture "$url_placeholder" terraform -chdir="$INFRA_DIR" output -raw qdrant_url)"

  log "Helm: $APP_RELEASE in $APP_NAMESPACE with $(basename "$VALUES_FILE"), qdrant.url=$qdrant_url"
  local pull_secret=() extra=() setting
  if [[ -n "${IMAGE_REGISTRY_USER:-}" ]]; then
    pull_secret=(--set-string "images.pullSecrets[0]=$REGISTRY_SECRET")
  fi
  while IFS= read -r setting; do
    extra+=(--set-string "$setting")
  done < <(replication_values)
  # Self-hosted: scheduled Qdrant snapshots into the bucket (Hybrid: the backup schedule).
  if [[ $QDRANT_MODE == self-hosted ]]; then extra+=(--set "snapshots.enabled=true"); fi
  # No --wait: the service only turns ready once the first ingest has written the collections.
  run helm upgrade --install "$APP_RELEASE" "$CHART_DIR" --namespace "$APP_NAMESPACE" \
    -f "$VALUES_FILE" --set-string "qdrant.url=$qdrant_url" ${extra[@]+"${extra[@]}"} \
    --set-string "qdrant.existingSecret=$QDRANT_SECRET" \
    --set-string "images.registry=$IMAGE_REGISTRY" \
    --set-string "images.ingest.tag=$IMAGE_TAG" --set-string "images.service.tag=$IMAGE_TAG" \
    ${pull_secret[@]+"${pull_secret[@]}"}

  log "First ingest: a Job from cronjob/${APP_RELEASE}-ingest"
  local job
  job="$(create_ingest_job)"
  wait_for_job "$APP_NAMESPACE" "$job" "$INGEST_TIMEOUT"

  log "Service rollout"
  wait_for_rollout "$APP_NAMESPACE" "deployment/$APP_RELEASE" 10m

  log "External address of service/$APP_RELEASE"
  local address
  address="$(wait_for_address)"

  log "Done. Try it:"
  cat >&3 <<EOF
  curl -s -X POST http://$address/recommendations -H 'content-type: application/json' \\
    -d '{"ratings": {"2571": 1, "329": 1, "260": 1, "1": 1, "356": 1, "2116": 1, "2288": -1, "1721": -1, "296": -1, "1291": -1, "1036": -1}, "limit": 5, "model": "tutorial"}'
  web page: http://$address/
  kubectl:  export KUBECONFIG=$KUBECONFIG_FILE
  tear down (stops the billing): make destroy QDRANT_MODE=$QDRANT_MODE
EOF
}

main "$@"
