"""Real SHA-256 prefix collisions (found by brute force once, kept here): two message ids whose
escalation refs collide, two idempotency keys whose approval ids collide, and the documented
derivation of each owner's candidates (attempt 0 hashes the seed, attempt n hashes f"{seed}:{n}"),
written out independently of the runtime's code so a change there shows."""

from __future__ import annotations

import hashlib

MSG_A, MSG_B = "msg-collide-00031128", "msg-collide-00089385"
"""Both derive ESC-d7464c03 first."""
KEY_A, KEY_B = "idem-collide-00121096", "idem-collide-00133801"
"""Both derive APR-5d634f40 first."""


def hex8(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:8]


def candidate(prefix: str, seed: str, attempt: int) -> str:
    return prefix + hex8(seed if attempt == 0 else f"{seed}:{attempt}")


TAKEN_REF = candidate("ESC-", MSG_A, 0)
"""The ref both messages derive first: MSG_A's when MSG_A is stored first."""
NEXT_REF_B = candidate("ESC-", MSG_B, 1)
"""Where MSG_B's record goes when its first ref is taken."""
