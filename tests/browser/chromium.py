"""Debian's Chromium driven by Playwright, as every browser test uses it: where it is, how it is
launched, where screenshots go, and the marks that skip (with the reason) where it is missing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MODGATE_BROWSER_ARTIFACTS", "var/browser-artifacts"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (the dev extra has it)"),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed at /usr/bin/chromium: run `make browser-deps` "
        "(apt-get install chromium chromium-driver)",
    ),
]


def assert_fits_a_phone(page: Page, screenshot: str) -> None:
    """At a phone's width the page reflows: nothing wider than the screen, so no sideways scrolling."""
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    finally:
        page.set_viewport_size({"width": 1280, "height": 860})
