"""HTTP clients the actors share per process (one connection pool each, opened in `Actor.start`)."""
