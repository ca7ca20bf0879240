#!/usr/bin/env bash
# `make destroy`: tear down what `make deploy` created. In-cluster things that own billed
# OVHcloud resources go first (the service's load balancer, Qdrant's Cinder volumes), then
# Terraform destroys the Qdrant cluster, the Hybrid Cloud environment and the Kubernetes cluster.
# DRY_RUN=1 prints every command in order and runs none.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QDRANT_MODE="${QDRANT_MODE:-hybrid}"
INFRA_DIR="${INFRA_DIR:-$PROJECT_ROOT/infra}"
KUBECONFIG_FILE="${KUBECONFIG_FILE:-$INFRA_DIR/.generated/kubeconfig}"

check_destroy_prerequisites() {
  need_cloud_env
  need_cmd terraform "https://developer.hashicorp.com/terraform/install, >= 1.7"
  need_cmd kubectl "tools/install-k8s-tools.sh puts it in .tools/bin"
  need_cmd helm "tools/install-k8s-tools.sh puts it in .tools/bin"
  check_prerequisites "make destroy (QDRANT_MODE=$QDRANT_MODE)"
}

tf_vars() {
  TF_VARS=(-var "ovh_project_id=$OVH_CLOUD_PROJECT_SERVICE"
    -var "ovh_endpoint=${OVH_ENDPOINT:-ovh-eu}"
    -var "qdrant_mode=$QDRANT_MODE"
    -var "qdrant_namespace=$QDRANT_NAMESPACE"
    -var "qdrant_api_key_secret=$QDRANT_SECRET"
    -var "kubeconfig_path=$KUBECONFIG_FILE")
}

main() {
  check_destroy_prerequisites
  export KUBECONFIG="$KUBECONFIG_FILE"
  is_dry_run && note "DRY_RUN=1: printing the plan (QDRANT_MODE=$QDRANT_MODE); nothing is run"
  local approve=()
  if [[ "${AUTO_APPROVE:-0}" == 1 ]]; then approve=(-auto-approve); fi
  tf_vars
  run terraform -chdir="$INFRA_DIR" init -input=false

  # Without a reachable cluster (already gone, or never created) only Terraform is left to do.
  local cluster_reachable=1
  if ! is_dry_run && ! kubectl version --request-timeout=10s >/dev/null 2>&1; then
    cluster_reachable=0
    warn "cluster not reachable with $KUBECONFIG_FILE: skipping the in-cluster clean-up"
  fi

  if ((cluster_reachable)); then
    log "Helm: uninstall $APP_RELEASE (releases its OVHcloud load balancer)"
    run helm uninstall "$APP_RELEASE" --namespace "$APP_NAMESPACE" --ignore-not-found --wait --timeout 10m
    if [[ $QDRANT_MODE == self-hosted ]]; then
      log "Helm: uninstall $QDRANT_RELEASE"
      run helm uninstall "$QDRANT_RELEASE" --namespace "$QDRANT_NAMESPACE" --ignore-not-found --wait --timeout 10m
    else
      log "Terraform: destroy the Qdrant cluster first, while its operator can still clean up"
      run terraform -chdir="$INFRA_DIR" destroy -input=false ${approve[@]+"${approve[@]}"} "${TF_VARS[@]}" \
        -target='qdrant-cloud_accounts_cluster.movierec'
    fi
    log "Delete Qdrant's volumes (Cinder volumes outlive a deleted cluster and stay billed)"
    run kubectl -n "$QDRANT_NAMESPACE" delete pvc --all --ignore-not-found --wait --timeout=5m
  fi

  log "Terraform: destroy everything else (Hybrid Cloud environment, node pool, Kubernetes cluster)"
  run terraform -chdir="$INFRA_DIR" destroy -input=false ${approve[@]+"${approve[@]}"} "${TF_VARS[@]}"
  run rm -f "$KUBECONFIG_FILE" "$INFRA_DIR/.generated/hybrid-bootstrap.sh"
  log "Done. Check the OVHcloud control panel (Public Cloud > Load Balancer, Block Storage) and the Qdrant Cloud console for leftovers."
}

main "$@"
