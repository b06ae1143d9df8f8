"""This build's release date: a wall clock earlier than it cannot be right (no such build yet).

Used with the last-known-good time to decide whether wall-clock slots may fire
(``agent.domain.clockrules``).
"""

RELEASE_DATE = "2026-11-01"
