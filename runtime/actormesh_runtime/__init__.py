"""ActorMesh runtime: the support-agent actors, the JetStream bus, the gateway and the local dev mesh."""

from actormesh_runtime.deferred_imports import defer_aiohttp

__version__ = "0.1.0"

defer_aiohttp()
