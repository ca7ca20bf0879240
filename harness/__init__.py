"""What the benchmarks (bench/) and the tests (tests/) share: the real `movierec serve` on a
free loopback port (`harness.service`), the requests people send (`harness.queries`) and latency
percentiles (`harness.latency`). Imported from the repository root (pytest, `python -m bench.*`).
"""
