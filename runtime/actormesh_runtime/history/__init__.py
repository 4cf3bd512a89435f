"""Conversation history: the SQLite store (`store`), its read protocol over NATS (`protocol`, the only
part other processes import) and the single-writer service that owns the file (`service`)."""
