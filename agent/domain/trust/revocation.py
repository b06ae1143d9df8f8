"""The revocation list: a root-signed, versioned list of disabled key ids.

Its payload is strict JSON ``{"version": N, "issued": "...Z", "revoked": ["key id", ...]}``
(``note`` optional). Versions only go up: a list not newer than the applied one is ``stale``,
so an old list replayed from a stick or a retained message never brings a revoked key back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.domain.document import DocumentError, loads_strict_json
from agent.domain.trust.envelope import ID_RE, TrustRejected, parse_time

MAX_REVOKED = 10_000
MAX_VERSION = 2**53
MAX_BYTES = 1024 * 1024
KEYS = {"version", "issued", "revoked", "note"}


@dataclass(frozen=True)
class RevocationList:
    version: int
    issued: str
    revoked: frozenset[str] = field(default_factory=frozenset)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "issued": self.issued,
            "revoked": sorted(self.revoked),
        }
        if self.note is not None:
            out["note"] = self.note
        return out


EMPTY = RevocationList(0, "1970-01-01T00:00:00Z")


def parse_revocations(data: bytes) -> RevocationList:
    """The list in ``data``; TrustRejected("malformed") with the reason when it is not one."""
    try:
        obj = loads_strict_json(data, "revocation list", MAX_BYTES)
    except DocumentError as exc:
        raise TrustRejected("malformed", f"revocation list: {exc.message}") from None
    if not isinstance(obj, dict):
        raise TrustRejected("malformed", "revocation list must be a JSON object")
    unknown = sorted(set(obj) - KEYS)
    if unknown:
        raise TrustRejected("malformed", f"revocation list: unknown field {unknown[0][:40]!r}")
    version = obj.get("version")
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise TrustRejected("malformed", "revocation list: version must be a whole number >= 1")
    issued = obj.get("issued")
    parse_time(issued)
    revoked = obj.get("revoked")
    if not isinstance(revoked, list) or len(revoked) > MAX_REVOKED:
        raise TrustRejected(
            "malformed", f"revocation list: revoked must be a list of ids (at most {MAX_REVOKED})"
        )
    for item in revoked:
        if not isinstance(item, str) or not ID_RE.match(item):
            raise TrustRejected(
                "malformed", "revocation list: every revoked entry must be a key id"
            )
    note = obj.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        raise TrustRejected(
            "malformed", "revocation list: note must be text of at most 500 characters"
        )
    return RevocationList(version, issued, frozenset(revoked), note)
