# shellcheck shell=bash disable=SC2034  # names defined here are used by the scripts sourcing it
# Shared by deploy.sh, destroy.sh and kind.sh: printing and running commands (DRY_RUN=1 prints
# the plan and runs nothing), keeping secrets out of what is printed, prerequisite checks that
# report everything missing at once, the API-key Secret, and waiting on Jobs with diagnostics.

PROJECT_ROOT="${PROJECT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
DRY_RUN="${DRY_RUN:-0}"
# helm and kubectl installed by tools/install-k8s-tools.sh win over whatever else is on PATH.
TOOLS_BIN="${TOOLS_BIN:-$PROJECT_ROOT/.tools/bin}"
PATH="$TOOLS_BIN:$PATH"
export PATH

# Names shared with charts/movierec and k8s/ (see notes/contract.md).
APP_RELEASE="${APP_RELEASE:-movierec}"
APP_NAMESPACE="${APP_NAMESPACE:-movierec}"
QDRANT_RELEASE="${QDRANT_RELEASE:-qdrant}"
QDRANT_NAMESPACE="${QDRANT_NAMESPACE:-qdrant}"
QDRANT_SECRET="${QDRANT_SECRET:-qdrant-api-key}"
# The official Qdrant chart, pinned (qdrant/qdrant-helm release qdrant-1.19.0).
QDRANT_CHART_REPO="${QDRANT_CHART_REPO:-https://qdrant.github.io/qdrant-helm}"
QDRANT_CHART_VERSION="${QDRANT_CHART_VERSION:-1.19.0}"
CHART_DIR="$PROJECT_ROOT/charts/movierec"
K8S_DIR="$PROJECT_ROOT/k8s"

# Environment variables whose values must never be printed.
SECRET_VARS=(OVH_APPLICATION_KEY OVH_APPLICATION_SECRET OVH_CONSUMER_KEY OVH_CLIENT_ID
  OVH_CLIENT_SECRET OVH_ACCESS_TOKEN QDRANT_CLOUD_API_KEY QDRANT_API_KEY
  QDRANT_READ_ONLY_API_KEY SERVICE_API_KEY IMAGE_REGISTRY_PASSWORD)

# Plan lines go to file descriptor 3 (stdout), so a command run inside $(...) still prints
# its line in order instead of having it captured.
exec 3>&1

log() { printf '==> %s\n' "$*" >&3; }
note() { printf '# %s\n' "$*" >&3; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

is_dry_run() { [[ $DRY_RUN == 1 ]]; }

# redact TEXT: TEXT with the value of every secret variable replaced by ***.
redact() {
  local text=$1 name value
  for name in "${SECRET_VARS[@]}"; do
    value="${!name:-}"
    if [[ ${#value} -ge 4 ]]; then
      text="${text//"$value"/***}"
    fi
  done
  printf '%s' "$text"
}

# quote_cmd ARG...: the command as a person would type it (args with spaces or quotes quoted).
quote_cmd() {
  local out="" arg
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,{}\-]+$ ]]; then
      out+="$arg "
    else
      out+="'${arg//\'/\'\\\'\'}' "
    fi
  done
  printf '%s' "${out% }"
}

# run CMD ARG...: print the command (secrets redacted) and run it unless DRY_RUN=1.
run() {
  printf '+ %s\n' "$(redact "$(quote_cmd "$@")")" >&3
  if is_dry_run; then return 0; fi
  "$@"
}

# run_sh 'PIPELINE': the same for a shell pipeline.
run_sh() {
  printf '+ %s\n' "$(redact "$1")" >&3
  if is_dry_run; then return 0; fi
  bash -c "set -euo pipefail; $1"
}

# capture PLACEHOLDER CMD ARG...: print the command, run it and print its output; in a dry run
# print PLACEHOLDER instead, so the plan can go on with a readable stand-in.
capture() {
  local placeholder=$1
  shift
  printf '+ %s\n' "$(redact "$(quote_cmd "$@")")" >&3
  if is_dry_run; then
    printf '%s' "$placeholder"
    return 0
  fi
  "$@"
}

# --- prerequisites: collect everything missing, then fail once ------------------------------

MISSING=()
MISSING_TOOLS=()

# need_env VAR WHAT: VAR must be set and non-empty.
need_env() {
  if [[ -z "${!1:-}" ]]; then MISSING+=("$1: $2"); fi
}

# need_cmd CMD HOW: CMD must be on PATH.
need_cmd() {
  if ! command -v "$1" >/dev/null 2>&1; then MISSING_TOOLS+=("$1: $2"); fi
}

# need_cloud_env: QDRANT_MODE and the credentials deploy/destroy need for it.
need_cloud_env() {
  case "$QDRANT_MODE" in
    hybrid | self-hosted) ;;
    *) MISSING+=("QDRANT_MODE: hybrid or self-hosted, not '$QDRANT_MODE'") ;;
  esac
  need_env OVH_CLOUD_PROJECT_SERVICE "OVHcloud Public Cloud project id"
  # The ovh provider takes an application key triple, or an OAuth2 service account.
  if [[ -n "${OVH_CLIENT_ID:-}${OVH_CLIENT_SECRET:-}" ]]; then
    need_env OVH_CLIENT_ID "OVHcloud OAuth2 service account id"
    need_env OVH_CLIENT_SECRET "OVHcloud OAuth2 service account secret"
  else
    need_env OVH_APPLICATION_KEY "OVHcloud API application key; or use OVH_CLIENT_ID + OVH_CLIENT_SECRET"
    need_env OVH_APPLICATION_SECRET "OVHcloud API application secret"
    need_env OVH_CONSUMER_KEY "OVHcloud API consumer key"
  fi
  if [[ $QDRANT_MODE == hybrid ]]; then
    need_env QDRANT_CLOUD_API_KEY "Qdrant Cloud management key; or use QDRANT_MODE=self-hosted"
    need_env QDRANT_CLOUD_ACCOUNT_ID "Qdrant Cloud account id"
  elif [[ -z "${QDRANT_CLOUD_API_KEY:-}" ]]; then
    # The qdrant-cloud provider wants a non-empty key even when it manages nothing.
    export QDRANT_CLOUD_API_KEY=unused-in-self-hosted-mode
  fi
}

# check_prerequisites WHAT: fail with one message listing every missing variable and tool.
# A dry run only warns about tools (it runs none) but still fails on missing variables.
check_prerequisites() {
  local what=$1 item message=""
  if ((${#MISSING[@]})); then
    message+="missing environment variables for $what:"
    for item in "${MISSING[@]}"; do message+=$'\n'"  - $item"; done
  fi
  if ((${#MISSING_TOOLS[@]})); then
    if is_dry_run; then
      for item in "${MISSING_TOOLS[@]}"; do warn "not on PATH (needed for a real run): $item"; done
    else
      [[ -n $message ]] && message+=$'\n'
      message+="missing tools for $what:"
      for item in "${MISSING_TOOLS[@]}"; do message+=$'\n'"  - $item"; done
    fi
  fi
  if [[ -n $message ]]; then
    printf 'error: %s\n' "$message" >&2
    printf 'See README.md, section "Deploy", for what each one is and where to get it.\n' >&2
    exit 2
  fi
}

# --- Qdrant API keys ----------------------------------------------------------------------

# prepare_api_keys NAMESPACE: write the read-write and read-only keys to 0600 files in
# $KEY_DIR: from QDRANT_API_KEY / QDRANT_READ_ONLY_API_KEY if set, else from the existing
# Secret in NAMESPACE (re-runs keep their keys), else freshly generated. Never printed.
prepare_api_keys() {
  local namespace=$1
  if is_dry_run; then
    KEY_DIR='<temp dir>'
    note "API keys: QDRANT_API_KEY/QDRANT_READ_ONLY_API_KEY if set, else the existing Secret $namespace/$QDRANT_SECRET, else generated; written to 0600 files in a temporary directory, never printed"
    return 0
  fi
  KEY_DIR="$(mktemp -d)"
  chmod 700 "$KEY_DIR"
  # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
  trap "rm -rf '$KEY_DIR'" EXIT
  (
    umask 077
    if [[ -n "${QDRANT_API_KEY:-}" && -n "${QDRANT_READ_ONLY_API_KEY:-}" ]]; then
      printf '%s' "$QDRANT_API_KEY" >"$KEY_DIR/api-key"
      printf '%s' "$QDRANT_READ_ONLY_API_KEY" >"$KEY_DIR/read-only-api-key"
      echo "API keys: from QDRANT_API_KEY and QDRANT_READ_ONLY_API_KEY" >&3
    elif kubectl -n "$namespace" get secret "$QDRANT_SECRET" >/dev/null 2>&1; then
      kubectl -n "$namespace" get secret "$QDRANT_SECRET" -o 'jsonpath={.data.api-key}' |
        base64 -d >"$KEY_DIR/api-key"
      kubectl -n "$namespace" get secret "$QDRANT_SECRET" -o 'jsonpath={.data.read-only-api-key}' |
        base64 -d >"$KEY_DIR/read-only-api-key"
      echo "API keys: kept from the existing Secret $namespace/$QDRANT_SECRET" >&3
    else
      python3 -c 'import secrets, sys; sys.stdout.write(secrets.token_urlsafe(32))' >"$KEY_DIR/api-key"
      python3 -c 'import secrets, sys; sys.stdout.write(secrets.token_urlsafe(32))' >"$KEY_DIR/read-only-api-key"
      echo "API keys: generated new ones" >&3
    fi
  )
  [[ -s "$KEY_DIR/api-key" && -s "$KEY_DIR/read-only-api-key" ]] ||
    die "could not read or generate the Qdrant API keys"
}

# apply_namespaces: both namespaces, with their Pod Security labels (k8s/namespaces.yaml).
apply_namespaces() {
  run kubectl apply -f "$K8S_DIR/namespaces.yaml"
}

# apply_api_key_secret NAMESPACE: the Secret with both keys, from the files of prepare_api_keys.
apply_api_key_secret() {
  run_sh "kubectl -n $1 create secret generic $QDRANT_SECRET --from-file=api-key=$KEY_DIR/api-key --from-file=read-only-api-key=$KEY_DIR/read-only-api-key --dry-run=client -o yaml | kubectl apply -f -"
}

# install_official_qdrant ENV: the official chart, pinned, with k8s/qdrant/values.yaml and
# values-ENV.yaml (kind or ovh). Both keys come from the Secret, which must exist first: the
# chart looks it up at install time. Then the NetworkPolicy that admits only movierec's pods.
install_official_qdrant() {
  local env=$1
  run helm repo add qdrant "$QDRANT_CHART_REPO" --force-update
  if ! run helm upgrade --install "$QDRANT_RELEASE" qdrant/qdrant --version "$QDRANT_CHART_VERSION" \
    --namespace "$QDRANT_NAMESPACE" \
    -f "$K8S_DIR/qdrant/values.yaml" -f "$K8S_DIR/qdrant/values-$env.yaml" \
    --wait --timeout 10m; then
    show_diagnostics "$QDRANT_NAMESPACE"
    die "Qdrant did not become ready (logs and events above)"
  fi
  apply_qdrant_network_policy
}

# apply_qdrant_network_policy: Qdrant's client ports accept only the movierec workloads.
apply_qdrant_network_policy() {
  run kubectl apply -f "$K8S_DIR/qdrant/networkpolicy.yaml"
}

# chart_app_version: the chart's appVersion, the fixed tag of both images (never "latest").
chart_app_version() {
  sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$CHART_DIR/Chart.yaml"
}

# --- Jobs, rollouts and what to show when they fail ---------------------------------------

# show_diagnostics NAMESPACE: pods, recent events and logs of pods that are not Running/Succeeded.
show_diagnostics() {
  local namespace=$1 pod
  is_dry_run && return 0
  {
    echo "---- diagnostics for namespace $namespace ----"
    kubectl -n "$namespace" get pods -o wide || true
    kubectl -n "$namespace" get events --sort-by=.lastTimestamp | tail -n 40 || true
    for pod in $(kubectl -n "$namespace" get pods -o name 2>/dev/null); do
      echo "---- logs of $pod ----"
      kubectl -n "$namespace" logs "$pod" --all-containers --tail=80 || true
    done
  } >&2
}

# create_ingest_job: run the suspended ingest CronJob once; prints the Job's name.
create_ingest_job() {
  local job
  job="${APP_RELEASE}-ingest-$(date +%Y%m%d%H%M%S)"
  run kubectl -n "$APP_NAMESPACE" create job "$job" --from="cronjob/${APP_RELEASE}-ingest" >/dev/null
  printf '%s' "$job"
}

# wait_for_job NAMESPACE JOB TIMEOUT_SECONDS: until Complete (0) or Failed / timed out (exit,
# after printing pod logs and events).
wait_for_job() {
  local namespace=$1 job=$2 timeout=$3 conditions deadline
  printf '+ %s\n' "wait for job/$job in $namespace to be Complete (fail on Failed), at most ${timeout}s: kubectl -n $namespace get job $job -o jsonpath='{.status.conditions}' every 10s" >&3
  is_dry_run && return 0
  deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    conditions="$(kubectl -n "$namespace" get job "$job" \
      -o 'jsonpath={range .status.conditions[*]}{.type}={.status}{" "}{end}' 2>/dev/null || true)"
    case " $conditions " in
      *" Complete=True "*) return 0 ;;
      *" Failed=True "*)
        show_diagnostics "$namespace"
        die "job $job failed (logs and events above)"
        ;;
    esac
    sleep 10
  done
  show_diagnostics "$namespace"
  die "job $job did not finish within ${timeout}s (logs and events above)"
}

# wait_for_rollout NAMESPACE KIND/NAME TIMEOUT: kubectl rollout status, diagnostics on failure.
wait_for_rollout() {
  if ! run kubectl -n "$1" rollout status "$2" --timeout="$3"; then
    show_diagnostics "$1"
    die "$2 in $1 did not become ready within $3 (logs and events above)"
  fi
}
