"""GatewayServer serves the web queue beside gRPC when given a web address, and stops both."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from gateway.config import Settings
from gateway.generation.generator import Generator
from gateway.pipeline.recording import Recorder
from gateway.server import Components, GatewayServer, StartupError
from gateway.storage.engine import make_engine, make_session_factory
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import PRESETS
from moderation.scorers.profanity import ProfanityScorer


def components(generator: Generator, db_url: str) -> Components:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    moderator = Moderator([ProfanityScorer()], PRESETS, default_policy="default", masker=Masker())
    return Components(
        settings=Settings(model=generator.model_id, database_url=db_url),
        generator=generator,
        moderator=moderator,
        engine=engine,
        sessions=sessions,
        recorder=Recorder(sessions),
    )


async def test_web_queue_runs_beside_grpc_and_stops_with_it(generator: Generator, db_url: str) -> None:
    c = components(generator, db_url)
    server = GatewayServer(c, address="127.0.0.1:0", web_address="127.0.0.1:0")
    await server.start()
    try:
        assert server.web is not None and server.web.port > 0
        async with httpx.AsyncClient(base_url=server.web.url.rstrip("/")) as client:
            assert (await client.get("/healthz")).text == "ok"
            login = await client.get("/login")
            assert login.status_code == 200 and "Reviewer login" in login.text
            assert login.headers["content-security-policy"].startswith("default-src 'self'")
            css = await client.get("/static/app.css")
            assert css.status_code == 200 and "cache-control" not in css.headers
    finally:
        await server.stop(grace=0)
        c.engine.dispose()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(server.web.url + "healthz", timeout=2)


async def test_a_busy_web_port_is_a_startup_error(generator: Generator, db_url: str) -> None:
    c = components(generator, db_url)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = GatewayServer(c, address="127.0.0.1:0", web_address=f"127.0.0.1:{port}")
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port} for the web queue"):
            await server.start()
    await asyncio.sleep(0)
    c.engine.dispose()


async def test_without_a_web_address_there_is_no_web_server(generator: Generator, db_url: str) -> None:
    c = components(generator, db_url)
    server = GatewayServer(c, address="127.0.0.1:0")
    await server.start()
    try:
        assert server.web is None
    finally:
        await server.stop(grace=0)
        c.engine.dispose()
