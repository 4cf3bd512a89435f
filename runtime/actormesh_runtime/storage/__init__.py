"""Storage: TTL stores (Redis or in-process), the customer-context cache on them, gateway session state."""
