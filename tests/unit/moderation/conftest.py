"""Fixtures for the moderation library's unit tests. No network: Hugging Face is forced offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import PRESETS
from moderation.scorers.profanity import ProfanityScorer


@pytest.fixture(scope="session")
def profanity() -> ProfanityScorer:
    return ProfanityScorer()


@pytest.fixture()
def word_moderator(profanity: ProfanityScorer) -> Moderator:
    return Moderator([profanity], PRESETS, default_policy="default", masker=Masker())
