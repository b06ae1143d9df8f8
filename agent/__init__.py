"""Station agent: plays scheduled courses on a village terminal and reports to the county."""

__version__ = "0.1.0"

# A wall clock earlier than this cannot be right: this build did not exist yet. Used with the
# last-known-good time to decide whether wall-clock slots may fire (see agent.adapters.kernel_clock).
RELEASE_DATE = "2026-11-01"
