"""The nine actors, one per module. `registry.build_actor(name, deps)` makes one by name."""
