import json
import logging

import pytest

from gateway.ops.logs import configure_logging
from gateway.pipeline.request_ids import request_id_var


def test_json_logs_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    token = request_id_var.set("req-123")
    try:
        logging.getLogger("gateway.test").info("hello %s", "world")
    finally:
        request_id_var.reset(token)
        logging.getLogger().handlers.clear()
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["message"] == "hello world" and entry["request_id"] == "req-123"
    assert entry["level"] == "INFO" and entry["logger"] == "gateway.test" and entry["time"].endswith("+00:00")
