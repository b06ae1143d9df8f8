"""A small county PKI for the trust tests, made with countyctl's own key code: a province root,
a root nobody installed, county keys (current, old, expired, another county's), and helpers that
sign documents exactly as ``countyctl sign`` does."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.cli.county.keys import KeyFile, certify, envelope, new_key, revocation_envelope
from agent.domain.trust import ALL, time_text

COUNTY, TERMINAL = "c-01", "t-001"


@dataclass
class Pki:
    folder: Path
    roots_dir: Path  # what a terminal installs: the root's .pub only
    root: KeyFile
    stranger_root: KeyFile  # not installed anywhere
    keys: dict[str, tuple[KeyFile, dict[str, Any]]]  # name -> (key, cert)

    def sign(
        self,
        payload: bytes,
        *,
        key: str = "current",
        kind: str = "schedule",
        county: str = COUNTY,
        to: str = ALL,
    ) -> bytes:
        k, cert = self.keys[key]
        return envelope(k, cert, kind, county, to, payload)

    def revocations(self, version: int, revoked: list[str], county: str = ALL) -> bytes:
        return revocation_envelope(self.root, revoked, version, county)

    def certify(self, name: str, key_id: str, county: str = COUNTY, **kw: Any) -> None:
        k = new_key(self.folder, key_id, "county", county)
        self.keys[name] = (k, certify(self.root, key_id, county, k.public(), **kw))


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    root = new_key(folder, "prov-root-1", "root")
    stranger = new_key(folder, "evil-root", "root")
    roots_dir = folder / "roots"
    roots_dir.mkdir()
    (roots_dir / "prov-root-1.pub").write_text((folder / "prov-root-1.pub").read_text())
    pki = Pki(folder, roots_dir, root, stranger, {})
    pki.certify("current", "c-01-k1")
    pki.certify("old", "c-01-k0")
    pki.certify("other_county", "c-02-k1", county="c-02")
    year_ago = time.time() - 400 * 86400
    pki.certify("expired", "c-01-k-2024", days=30, not_before=year_ago)
    unknown = new_key(folder, "c-01-rogue", "county", COUNTY)
    pki.keys["unknown_root"] = (
        unknown,
        certify(stranger, "c-01-rogue", COUNTY, unknown.public()),
    )
    return pki


def schedule_bytes(version: int, **extra: Any) -> bytes:
    """A schedule with one slot far in the future (nothing plays during the tests)."""
    doc = {
        "version": version,
        "timezone": "Asia/Shanghai",
        "items": [
            {
                "id": f"slot-{version}",
                "at": "2099-01-01T19:30:00",
                "course": {"id": f"course-{version}", "title": "Test", "media": "a.mp4"},
            }
        ],
        **extra,
    }
    return json.dumps(doc, ensure_ascii=False).encode()


def command_bytes(cmd_id: str, *, expires_in: float = 600, issued: float | None = None) -> bytes:
    ts = time.time() if issued is None else issued
    msg = {
        "id": cmd_id,
        "cmd": "ping",
        "args": {},
        "ts": time_text(ts),
        "expires": time_text(ts + expires_in),
        "terminal": TERMINAL,
    }
    return json.dumps(msg).encode()
