"""ActorMesh benchmark: the real mesh (rules mode) side by side with a bare JetStream relay chain.

Not a test and not part of the shipped package: `make bench` (or `python -m bench OUT.json`) runs it
on this machine against a real nats-server on a random loopback port. See bench/README.md.
"""
