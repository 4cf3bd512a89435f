"""ActorMesh operator: reconciles ActorMesh custom resources into a running mesh (kopf)."""
