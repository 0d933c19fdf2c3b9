"""The WebhookService servicer: a tenant registers, lists and removes its own webhook endpoints.

The caller's key decides the tenant; another tenant's endpoint is NOT_FOUND, as if it did not exist.
Registrations are audited with actor `key:<key id>`.
"""

from __future__ import annotations

import grpc
from sqlalchemy.orm import Session, sessionmaker

from gateway import fields
from gateway.api.v1 import webhooks_pb2 as wh_pb
from gateway.api.v1 import webhooks_pb2_grpc as wh_grpc
from gateway.errors import InvalidArgument
from gateway.pipeline.callers import current_caller
from gateway.rpc.services.convert import timestamp
from gateway.storage.models import WebhookEndpoint
from gateway.storage.tx import in_read_only, in_transaction
from gateway.webhooks.endpoints import create_endpoint, list_endpoints, remove_endpoint
from gateway.webhooks.events import EVENT_TYPES

MAX_EVENTS = len(EVENT_TYPES) * 2  # room for repeats, not for megabytes of them


def webhook_to_pb(endpoint: WebhookEndpoint) -> wh_pb.Webhook:
    return wh_pb.Webhook(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        created_at=timestamp(endpoint.created_at),
    )


class WebhookServicer(wh_grpc.WebhookServiceServicer):
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    async def AddWebhook(
        self, request: wh_pb.AddWebhookRequest, context: grpc.aio.ServicerContext
    ) -> wh_pb.AddWebhookResponse:
        caller = current_caller()
        if len(request.events) > MAX_EVENTS:
            raise InvalidArgument("events", f"at most {MAX_EVENTS} entries, got {len(request.events)}")

        def work(session: Session) -> wh_pb.AddWebhookResponse:
            endpoint, secret = create_endpoint(
                session=session,
                tenant=caller.tenant,
                url=request.url,
                events=list(request.events),
                actor=caller.actor,
            )
            return wh_pb.AddWebhookResponse(webhook=webhook_to_pb(endpoint), secret=secret)

        return await in_transaction(self._sessions, work)

    async def ListWebhooks(
        self, request: wh_pb.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> wh_pb.ListWebhooksResponse:
        tenant = current_caller().tenant

        def work(session: Session) -> wh_pb.ListWebhooksResponse:
            endpoints = list_endpoints(session=session, tenant=tenant)
            return wh_pb.ListWebhooksResponse(webhooks=[webhook_to_pb(e) for e in endpoints])

        return await in_read_only(self._sessions, work)

    async def RemoveWebhook(
        self, request: wh_pb.RemoveWebhookRequest, context: grpc.aio.ServicerContext
    ) -> wh_pb.RemoveWebhookResponse:
        caller = current_caller()
        endpoint_id = fields.record_id("id", request.id)

        def work(session: Session) -> wh_pb.RemoveWebhookResponse:
            remove_endpoint(
                session=session, endpoint_id=endpoint_id, actor=caller.actor, tenant=caller.tenant
            )
            return wh_pb.RemoveWebhookResponse()

        return await in_transaction(self._sessions, work)
