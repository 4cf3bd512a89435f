"""Operator benchmark: the real operator (a subprocess) against the test control plane, counted by the
API server's audit log. Not a test: `make bench-operator` runs it; see bench/operator_bench/README.md.

Pure parts (audit-log parsing, /proc parsing, aggregation, the report) are unit-tested in
tests/unit/test_operator_bench.py; the run itself (`scenario.py`, `cluster.py`) needs the control
plane binaries (`make k8s-bin`).
"""
