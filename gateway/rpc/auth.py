"""The gRPC side of authentication: the scope each service needs, and the interceptor that resolves the
caller (`gateway.pipeline.callers.resolve_caller`) before a servicer runs.

Health checking and reflection need no key. The server puts the ErrorInterceptor outside this one, so a
refusal (or a database outage during the key lookup) becomes its status code, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc

from gateway.pipeline.callers import INSECURE_TENANT, Authenticate, bearer_token, caller_var, resolve_caller
from gateway.rpc.interceptors import with_prelude

log = logging.getLogger(__name__)


SCOPE_FOR_SERVICE = {
    "modgate.v1.GenerationService": "generate",
    "modgate.v1.ReviewService": "review",
    "modgate.v1.QaService": "review",  # QA labels of released outputs, by a reviewer-bound key
    "modgate.v1.AuditService": "audit",
    # A tenant manages its own webhook endpoints with the key it generates with.
    "modgate.v1.WebhookService": "generate",
    # Operators change the policies every tenant is moderated under: never implied by another scope.
    "modgate.v1.PolicyService": "policy",
    "modgate.v1.WordListService": "policy",  # word lists are moderation configuration too
}


GRPC_KEY_HINT = "send metadata 'authorization: Bearer <key>'"


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED for a missing, unknown or revoked key; PERMISSION_DENIED outside its scopes."""

    def __init__(self, authenticate: Authenticate | None) -> None:
        self._authenticate = authenticate
        if authenticate is None:
            log.warning(
                "AUTHENTICATION IS OFF (--insecure-no-auth): every call acts as tenant %r", INSECURE_TENANT
            )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        scope = SCOPE_FOR_SERVICE.get(details.method.split("/")[1] if details.method else "")
        if scope is None:
            return handler
        metadata = details.invocation_metadata

        async def prelude(context: grpc.aio.ServicerContext) -> None:
            # Refusals are domain errors: the ErrorInterceptor, outside this one, maps them.
            secret = bearer_token(metadata)
            caller_var.set(await resolve_caller(self._authenticate, secret, scope, send=GRPC_KEY_HINT))

        return with_prelude(handler, prelude)
