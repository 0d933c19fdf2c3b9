"""Signed webhooks from an outbox: tenants' endpoints, the outbox written in the transaction of each
change, and the worker that delivers it (docs/operations.md, "Webhooks")."""
