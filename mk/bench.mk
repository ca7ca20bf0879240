# Benchmarks (issue 6): bench/ measures ingest, recommendation, HTTP serving and scale against
# the tutorial's pipeline and the numpy/scipy floor; `make bench` writes BENCHMARKS.md.
#   make bench         full run (about 15 min: 25M and 100M synthetic ratings; ~10 GB of disk
#                      under .movierec/bench, reused by the next run)
#   make bench-quick   under 2 minutes, prints the report, writes nothing
# Needs wrk (installed with apt-get when missing and run as root; otherwise bench/loadgen.py,
# a Python load generator, is used and the report says so) and pyinstrument + py-spy for the
# profiles (listed in /work/notes/bench-deps.txt for the lock; installed here when missing).

BENCH_ARGS ?=

.PHONY: bench-tools

bench-tools: install
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && \
	   apt-get install -y -qq wrk >/dev/null 2>&1)) ; } || \
	  echo "bench: wrk not available; HTTP load comes from bench/loadgen.py (Python)"
	@$(PY) -c "import pyinstrument" 2>/dev/null || \
	  $(PY) -m pip install --quiet pyinstrument py-spy || \
	  echo "bench: pyinstrument/py-spy not installed; profiles are skipped"

bench: bench-tools ## benchmarks vs the tutorial pipeline and the floor; writes BENCHMARKS.md
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: bench-tools ## the benchmarks in under 2 minutes (prints, writes nothing)
	$(PY) -m bench.run --quick $(BENCH_ARGS)
