"""Fixtures for tests against real servers. Each server fixture lives in tests/support/ and is re-exported here."""
