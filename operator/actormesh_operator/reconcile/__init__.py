"""The reconcile layer: the only part of the operator that talks to Kubernetes (and to kopf).

handlers.py (kopf triggers and settings) → state.py (per-run objects, wake-ups via queue.py, the
resync) → runner.py (one idempotent reconcile) → observe.py, apply.py (through kube.py, the HTTP
client) → builders and status (pure). errors.py classifies failures; diff.py holds the pure
apply/prune decisions; permissions.py lists the RBAC all of it needs; metrics.py the Prometheus metrics.
"""
