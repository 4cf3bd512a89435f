"""The ActorMesh API: the spec and status models, and the CRD generated from them.

Pure data: nothing here imports kopf, a Kubernetes client or the reconcile package (.importlinter).
"""
