"""The commerce-API HTTP client the actors share per process (one pool, opened in `Actor.start`)."""
