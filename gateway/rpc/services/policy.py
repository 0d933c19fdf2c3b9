"""The PolicyService servicer: stored policy versions over gRPC (scope `policy`, operators' keys).

Translation only: the store (gateway/policies/store.py) checks and audits; a change is attributed to
`key:<key id>`. A policy file that does not parse or check is INVALID_ARGUMENT worded as for the config
file; an unknown version NOT_FOUND; activating the served version FAILED_PRECONDITION.
"""

from __future__ import annotations

import grpc
from sqlalchemy.orm import Session, sessionmaker

from gateway import fields
from gateway.api.v1 import policy_pb2 as pol_pb
from gateway.api.v1 import policy_pb2_grpc as pol_grpc
from gateway.errors import InvalidArgument
from gateway.pipeline.callers import current_caller
from gateway.policies.render import diff_versions, to_toml
from gateway.policies.resolve import MAX_NAME_CHARS
from gateway.policies.store import (
    VersionInfo,
    activate,
    active_set,
    get_version,
    history,
    in_config_change,
    served_infos,
    set_version,
)
from gateway.rpc.services.convert import timestamp
from gateway.storage.tx import in_read_only
from moderation.backtest import MAX_PROPOSAL_CHARS, table_from_toml
from moderation.config import ModerationConfigError


def version_to_pb(info: VersionInfo) -> pol_pb.PolicyVersion:
    return pol_pb.PolicyVersion(
        version=info.version,
        name=info.name,
        policy_toml=to_toml(info.body),
        active=info.active,
        created_by=info.created_by,
        created_at=timestamp(info.created_at),
        activated_revision=info.activated_revision or 0,
        activated_by=info.activated_by or "",
        activated_at=timestamp(info.activated_at),
    )


def _version(value: int, field: str) -> int:
    if value <= 0:
        raise InvalidArgument(field, "must be a stored version number (1 or more)")
    return value


class PolicyServicer(pol_grpc.PolicyServiceServicer):
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    async def ListPolicies(
        self, request: pol_pb.ListPoliciesRequest, context: grpc.aio.ServicerContext
    ) -> pol_pb.ListPoliciesResponse:
        def work(session: Session) -> pol_pb.ListPoliciesResponse:
            served = active_set(session=session)
            return pol_pb.ListPoliciesResponse(
                revision=served.revision,
                policies=[
                    version_to_pb(info) for info in served_infos(session=session, served=served).values()
                ],
            )

        return await in_read_only(self._sessions, work)

    async def ListPolicyVersions(
        self, request: pol_pb.ListPolicyVersionsRequest, context: grpc.aio.ServicerContext
    ) -> pol_pb.ListPolicyVersionsResponse:
        name = fields.text("name", request.name, max_chars=MAX_NAME_CHARS) or None

        def work(session: Session) -> pol_pb.ListPolicyVersionsResponse:
            infos = history(session=session, name=name)
            return pol_pb.ListPolicyVersionsResponse(versions=[version_to_pb(i) for i in infos])

        return await in_read_only(self._sessions, work)

    async def GetPolicyVersion(
        self, request: pol_pb.GetPolicyVersionRequest, context: grpc.aio.ServicerContext
    ) -> pol_pb.PolicyVersion:
        version = _version(request.version, "version")
        return await in_read_only(
            self._sessions, lambda s: version_to_pb(get_version(session=s, version=version))
        )

    async def SetPolicy(
        self, request: pol_pb.SetPolicyRequest, context: grpc.aio.ServicerContext
    ) -> pol_pb.PolicyVersion:
        actor = current_caller().actor
        name = fields.text("name", request.name, max_chars=MAX_NAME_CHARS)
        if len(request.policy_toml) > MAX_PROPOSAL_CHARS:
            raise InvalidArgument("policy_toml", f"at most {MAX_PROPOSAL_CHARS} characters")
        try:
            table = table_from_toml(request.policy_toml)
        except ModerationConfigError as exc:
            raise InvalidArgument("policy_toml", str(exc)) from None
        return await in_config_change(
            self._sessions,
            lambda s: version_to_pb(set_version(session=s, name=name, table=table, actor=actor)),
        )

    async def DiffPolicyVersions(
        self, request: pol_pb.DiffPolicyVersionsRequest, context: grpc.aio.ServicerContext
    ) -> pol_pb.DiffPolicyVersionsResponse:
        a = _version(request.from_version, "from_version")
        b = _version(request.to_version, "to_version")

        def work(session: Session) -> pol_pb.DiffPolicyVersionsResponse:
            first, second = get_version(session=session, version=a), get_version(session=session, version=b)
            return pol_pb.DiffPolicyVersionsResponse(diff=diff_versions(first, second))

        return await in_read_only(self._sessions, work)

    async def ActivatePolicyVersion(
        self, request: pol_pb.ActivatePolicyVersionRequest, context: grpc.aio.ServicerContext
    ) -> pol_pb.ActivatePolicyVersionResponse:
        actor = current_caller().actor
        version = _version(request.version, "version")

        def work(session: Session) -> pol_pb.ActivatePolicyVersionResponse:
            revision, info = activate(session=session, version=version, actor=actor)
            return pol_pb.ActivatePolicyVersionResponse(revision=revision, policy=version_to_pb(info))

        return await in_config_change(self._sessions, work)
