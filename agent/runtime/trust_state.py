"""What the terminal trusts, on disk: the installed roots and the applied revocation list.

Roots are files ``<key id>.pub`` (one line of base64, the 32-byte Ed25519 public key) in
``trust.roots_dir``, installed with the agent. The applied revocation list lives in
``state_dir/trust/``: ``revocations.json`` (the list as applied) and ``revocations.floor`` (the
highest version ever applied, kept apart so that a damaged list never lets an older one in).
Both are read again for every document: they are small, and a key revoked (or a root installed)
while the agent runs counts at once, for the agent and for stationctl alike.
"""

from __future__ import annotations

import binascii
import json
import logging
import re
from pathlib import Path

from agent.domain.trust import EMPTY, RevocationList, TrustRejected, parse_revocations
from agent.runtime.files import atomic_write

log = logging.getLogger("agent.trust")

ROOT_FILE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\.pub$")
MAX_ROOTS = 64


def load_roots(folder: Path) -> dict[str, bytes]:
    """Root key id -> public key for every well-formed ``*.pub`` in ``folder`` (none if absent).

    A file that cannot be read or is not a 32-byte key is logged and left out: a damaged root
    file must not make every other root unusable.
    """
    roots: dict[str, bytes] = {}
    try:
        names = sorted(p for p in Path(folder).iterdir() if ROOT_FILE.match(p.name))
    except OSError:
        return roots
    for path in names[:MAX_ROOTS]:
        try:
            text = path.read_text("ascii").strip()
            key = binascii.a2b_base64(text, strict_mode=True)
        except (OSError, UnicodeDecodeError, binascii.Error, ValueError) as exc:
            log.warning("root key %s ignored: %s", path, exc)
            continue
        if len(key) != 32:
            log.warning("root key %s ignored: %d bytes, not 32", path, len(key))
            continue
        m = ROOT_FILE.match(path.name)
        assert m
        roots[m.group(1)] = key
    return roots


class RevocationState:
    """The applied revocation list and its version floor under ``state_dir/trust``."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / "trust"
        self.path = self.folder / "revocations.json"
        self.floor_path = self.folder / "revocations.floor"

    def floor(self) -> int:
        try:
            text = self.floor_path.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return 0
        return int(text) if text.isdigit() and len(text) <= 16 else 0

    def load(self) -> RevocationList:
        """The applied list (EMPTY when none was applied or it cannot be read)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return EMPTY
        try:
            return parse_revocations(data)
        except TrustRejected as exc:
            log.error("the applied revocation list %s cannot be read: %s", self.path, exc.message)
            return EMPTY

    def apply(self, new: RevocationList) -> tuple[str, int, list[str]]:
        """Store ``new`` if it is newer than every list applied before.

        Returns (status, previous version, reasons): ``applied``, or ``stale`` with the reason.
        """
        previous = max(self.floor(), self.load().version)
        if new.version <= previous:
            why = (
                f"revocation list version {new.version} is not newer than the applied "
                f"version {previous}"
            )
            return "stale", previous, [why]
        atomic_write(self.floor_path, f"{new.version}\n".encode())
        text = json.dumps(new.to_json(), ensure_ascii=False, indent=1, sort_keys=True)
        atomic_write(self.path, text.encode("utf-8"))
        return "applied", previous, []
