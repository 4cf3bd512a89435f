"""Storage: the customer-context cache and session state (Redis or in-process), the history store."""
