"""The whole mesh in one process (`actormesh ask`, `actormesh dev`, integration tests)."""
