"""The JetStream bus: connection and stream provisioning, publishing, the actor host, the dead-letter
stream and the per-process health/metrics server. docs/bus.md describes the guarantees."""
