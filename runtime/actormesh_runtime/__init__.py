"""ActorMesh runtime: the support-agent actors, the JetStream bus, the gateway and the local dev mesh."""

__version__ = "0.1.0"
