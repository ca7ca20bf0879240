# Soak: the real service on ml-1m at ~80% of its measured maximum throughput for
# SOAK_SECONDS (default 5 minutes); fails on any error, RSS growth >= 10% or an unstable p99,
# and writes its results into the "Soak" section of BENCHMARKS.md.
#   make soak [SOAK_SECONDS=300]

SOAK_SECONDS ?= 300

.PHONY: soak

soak: install ## ~6 min: the service at 80% of its max throughput for 5 min; results in BENCHMARKS.md
	@test -n "$(MOVIELENS_DIR)" || { echo "error: set MOVIELENS_DIR to the ml-1m files" >&2; exit 1; }
	$(PY) -m bench.soak --seconds $(SOAK_SECONDS) --data "$(MOVIELENS_DIR)" \
	  --json .movierec/soak.json --write-benchmarks BENCHMARKS.md
