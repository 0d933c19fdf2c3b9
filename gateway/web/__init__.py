"""The reviewer web queue: login, queue, review and audit pages, served by ``modgate serve``.

``create_app(sessions=..., settings=...)`` builds the ASGI app (tests drive it with Starlette's
TestClient); :class:`WebServer` runs it with uvicorn in the gateway's event loop. See docs/web.md.
"""

from gateway.web.app import create_app
from gateway.web.server import WebServer, WebStartupError

__all__ = ["WebServer", "WebStartupError", "create_app"]
