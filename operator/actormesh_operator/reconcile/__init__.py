"""The reconcile layer: the only part of the operator that talks to Kubernetes (and to kopf).

handlers.py (kopf triggers) → runner.py (one idempotent reconcile) → observe.py, apply.py (via
kube.py, the HTTP client) → builders (pure) and status (pure). errors.py classifies failures;
diff.py holds the pure apply/prune decisions; permissions.py lists the RBAC they need.
"""
