# Container images, built with docker or podman, and run for real with podman in `make test`.
#   make images         build movierec/ingest and movierec/recommender:<appVersion>
#                       CONTAINER_ENGINE=docker|podman (default: docker if its engine answers)
#                       BASE_IMAGE=<image> | local (default: the Dockerfiles' pinned python image;
#                       local: Debian bookworm + python3.11 made here by tools/base-image.sh)
#                       IMAGE_REGISTRY=<host/path> to tag them for a registry
#   make podman-tools   podman, runc and debootstrap from Debian, set up so containers start here
#   make base-image     make (or find, cached by its recipe) the local base; prints its name
#   make test-images    tests/images: the lock-only venvs, then both images built, ingest ml-1m
#                       into a volume, the service answering over HTTP, a clean stop

IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' charts/movierec/Chart.yaml)
IMAGE_REGISTRY ?=
CONTAINER_ENGINE ?=
BASE_IMAGE ?=
IMAGE_PREFIX := $(if $(IMAGE_REGISTRY),$(IMAGE_REGISTRY)/,)

TEST_DEPS += podman-tools

.PHONY: images podman-tools base-image test-images

images: ## build movierec/ingest and movierec/recommender:<appVersion> with docker or podman (BASE_IMAGE=local: base made here)
	@CONTAINER_ENGINE="$(CONTAINER_ENGINE)" IMAGE_TAG="$(IMAGE_TAG)" IMAGE_PREFIX="$(IMAGE_PREFIX)" \
	  BASE_IMAGE="$(BASE_IMAGE)" bash tools/build-images.sh

podman-tools: ## install podman, runc and debootstrap (Debian) and set podman up to start containers here
	@bash tools/install-podman.sh

base-image: podman-tools ## the local Debian bookworm + python3.11 base image (debootstrap; cached by recipe)
	@CONTAINER_ENGINE="$(or $(CONTAINER_ENGINE),podman)" bash tools/base-image.sh

test-images: install podman-tools ## build both images with podman and run them for real (ingest ml-1m, serve, stop)
	$(VENV)/bin/pytest -q -rs tests/images
