"""Logging and Prometheus metrics shared by every ActorMesh process."""
