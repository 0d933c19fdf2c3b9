"""Audit event types: one constant per step of a request's life, review decisions and admin actions.

Strings, not an Enum, because they are stored and queried as text and new types must not need a
migration; :data:`ALL_EVENT_TYPES` lets the CLI and the API validate a filter.

Refused calls (invalid input, no valid key, over a rate limit) are not audited: each would be a write to
the one audit chain that any caller, authenticated or not, could trigger at will. Invalid input and rate
limits are logged with the request id, gRPC refusals of every kind are counted by status code
(`modgate_grpc_requests_total`); an admitted request is audited from `request.received` on.
"""

from __future__ import annotations

REQUEST_RECEIVED = "request.received"
REQUEST_CANCELLED = "request.cancelled"
GENERATION_COMPLETED = "generation.completed"
GENERATION_FAILED = "generation.failed"
MODERATION_DECIDED = "moderation.decided"
REVIEW_HELD = "review.held"
REVIEW_APPEALED = "review.appealed"
REVIEW_CLAIMED = "review.claimed"
REVIEW_LEASE_EXPIRED = "review.lease_expired"
REVIEW_ESCALATED = "review.escalated"
# One of several verdicts on an item whose policy asks for them (gateway/review/consensus.py): not final.
REVIEW_VERDICT = "review.verdict"
REVIEW_DEADLINE_PASSED = "review.deadline_passed"
REVIEW_APPROVED = "review.approved"
REVIEW_EDITED = "review.edited"
REVIEW_REJECTED = "review.rejected"
RESULT_RELEASED = "result.released"
RESULT_READ = "result.read"
OUTPUT_REPLAYED = "output.replayed"
PROMPT_GENERATED = "prompt.generated"  # an approved held prompt's generation was recorded (its ticket)
KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
REVIEWER_CREATED = "reviewer.created"
REVIEWER_DISABLED = "reviewer.disabled"
REVIEWER_LOGIN = "reviewer.login"
REVIEWER_LOGIN_FAILED = "reviewer.login_failed"
REVIEWER_LOGOUT = "reviewer.logout"
REVIEWER_PASSWORD_CHANGED = "reviewer.password_changed"
WEBHOOK_CREATED = "webhook.created"
WEBHOOK_REMOVED = "webhook.removed"
WEBHOOK_REDELIVERED = "webhook.redelivered"
QA_LABELLED = "qa.labelled"
POLICY_SEEDED = "policy.seeded"
POLICY_VERSION_CREATED = "policy.version_created"
POLICY_ACTIVATED = "policy.activated"
WORDLIST_CREATED = "wordlist.created"
WORDLIST_CHANGED = "wordlist.changed"
WORDLIST_ATTACHED = "wordlist.attached"
WORDLIST_DETACHED = "wordlist.detached"

ALL_EVENT_TYPES: frozenset[str] = frozenset(
    value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str)
)
