"""modgate: a content-moderated generation gateway in front of GPT-Neo."""

__version__ = "0.1.0"
