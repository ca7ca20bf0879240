# Benchmarks: bench/ measures the default path first (`movierec ingest`, a request without
# options, in-process and over HTTP), then every served model, beside the tutorial's own
# pipeline and the numpy/scipy floor, at ml-1m and at 25M and 100M synthetic ratings;
# `make bench` writes BENCHMARKS.md (and README's headline figures).
#   make bench         full run (about 20 min on 2 cores; ~10 GB of disk under .movierec/bench,
#                      the generated ratings reused by the next run)
#   make bench-quick   about 2 minutes: small repeats, 1M scale only; prints, writes nothing
# Needs wrk (installed with apt-get when missing and run as root; otherwise bench/loadgen.py,
# a Python load generator, is used and the report says so), and pyinstrument + py-spy for the
# profiles (pinned in requirements/dev.lock with the other dev dependencies).

BENCH_ARGS ?=

.PHONY: bench-tools

bench-tools: install
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -qq -o DPkg::Lock::Timeout=600 wrk >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && \
	    apt-get install -y -qq -o DPkg::Lock::Timeout=600 wrk >/dev/null 2>&1)) ; } || \
	  echo "bench: wrk not available; HTTP load comes from bench/loadgen.py (Python)"
	@$(PY) -c "import pyinstrument" 2>/dev/null || \
	  echo "bench: pyinstrument is not installed (make install); profiles are skipped"

bench: bench-tools ## the default path and every model vs the tutorial and the floor; writes BENCHMARKS.md
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: bench-tools ## the benchmarks in about 2 minutes (prints, writes nothing)
	$(PY) -m bench.run --quick $(BENCH_ARGS)
