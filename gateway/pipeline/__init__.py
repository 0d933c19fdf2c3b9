"""The path of one generation call, whatever the front door: who calls (callers), admission
(rate limits), recording, generation, moderation batching, and the replay of a recorded call."""
