"""Runtime exceptions: a small tree, transient and permanent failures on separate branches.

The bus decides what to do from the branch alone: a `TransientError` (or any unexpected exception)
is retried by redelivery until `max_deliver` runs out; a `PermanentError` goes straight to the error
path and the dead-letter stream.
"""


class ActorMeshError(Exception):
    """Base of every error the runtime raises on purpose."""


class TransientError(ActorMeshError):
    """Might succeed if tried again later (upstream 5xx, connection refused, timeout)."""


class UpstreamUnavailable(TransientError):
    """A commerce API, Redis or the LLM endpoint did not answer usefully."""


class PermanentError(ActorMeshError):
    """Will fail the same way every time (bad data, a bug, a policy violation): do not retry."""


class InvalidEnvelope(PermanentError):
    """The bytes on the bus are not an envelope this runtime understands."""


class DeadlineExceeded(PermanentError):
    """The envelope's deadline passed; nobody is waiting for more work on it."""
