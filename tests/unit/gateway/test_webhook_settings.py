"""The webhook settings are validated like every other: a clear SettingsError, never a late failure."""

from __future__ import annotations

import pytest

from gateway.config import SettingsError, load_settings


def test_defaults_and_environment() -> None:
    s = load_settings(env={"MODGATE_WEBHOOK_GIVE_UP_S": "3600", "MODGATE_WEBHOOK_DELIVERY": "off"})
    assert s.webhook_give_up_s == 3600.0 and s.webhook_delivery is False
    assert load_settings(env={}).webhook_delivery is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODGATE_WEBHOOK_TIMEOUT_S": "0"}, "webhook_timeout_s must be a positive number"),
        ({"MODGATE_WEBHOOK_GIVE_UP_S": "-1"}, "webhook_give_up_s must be a positive number"),
        ({"MODGATE_WEBHOOK_POLL_INTERVAL_S": "nan"}, "webhook_poll_interval_s must be a positive number"),
        ({"MODGATE_WEBHOOK_RETRY_BASE_S": "100", "MODGATE_WEBHOOK_RETRY_MAX_S": "10"}, "must not exceed"),
        ({"MODGATE_WEBHOOK_TIMEOUT_S": "soon"}, "webhook_timeout_s has an invalid value"),
    ],
)
def test_bad_values_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)
