"""API keys for integration tests (and the reviewer accounts review keys act as), made in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from gateway.review.reviewers import create_reviewer
from gateway.storage.apikeys import create_key, revoke_key
from gateway.storage.engine import make_engine

REVIEWER_PASSWORD = "correct horse battery staple"


def make_keys(
    db_url: str, specs: Mapping[str, Mapping[str, Any]], *, reviewers: Sequence[str] = ()
) -> dict[str, str]:
    """name -> secret. A spec holds `create_key`'s arguments (`tenant`, `scopes`, `policy`, `reviewer`,
    limits); `revoked: True` revokes the key at once. `reviewers`: accounts to create first."""
    engine = make_engine(db_url)
    made: dict[str, str] = {}
    with Session(engine) as s, s.begin():
        for username in reviewers:
            create_reviewer(session=s, username=username, password=REVIEWER_PASSWORD, role="reviewer")
        for name, spec in specs.items():
            options = dict(spec)
            revoked = options.pop("revoked", False)
            key, made[name] = create_key(session=s, name=name, **options)
            if revoked:
                revoke_key(session=s, key_id=key.id)
    engine.dispose()
    return made
