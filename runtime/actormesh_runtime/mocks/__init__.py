"""Mock commerce APIs (customers, orders, tracking): fixed data, in-memory state, idempotent mutations.

`actormesh mocks` serves them as processes; `serve_mocks` (mocks.server) runs them inside an
existing event loop for the local mesh and the tests. Paths are documented in docs/mock-apis.md.
"""
