"""Moderation policies kept in the database: versioned, activated at runtime, seeded from the TOML file.

`store.py` (versions, activations, revisions: data functions), `resolve.py` (tables -> validated
policies, the config's own rules), `render.py` (a version as TOML, diffs), `live.py` (the moderator a
server swaps when the configuration moved), `watcher.py` (the background check that does the swap).
"""
