"""Pure commerce policy shared by decision_router and execution_coordinator: no I/O, table-tested.

`escalation` decides whether a conversation goes to a human and which actions it needs; `orders`
says which orders an action may touch and what the store policy allows for one order.
"""
