"""Word lists kept in the database, managed at runtime, applied per policy and per tenant.

`store.py` (lists, immutable versions, attachments: data functions), `serving.py` (the moderator
variants a replica builds once per revision and picks per call), `recorded.py` (the lists a recorded
decision used, for replay).
"""
