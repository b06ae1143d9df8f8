"""The trust gate every document door goes through: verify the envelope, then read the payload.

One ``TrustGate`` per process part that receives documents (the schedules, the library, the
inbox, the MQTT link through the bridge, stationctl). It holds no state of its own: the roots
folder, the applied revocation list and the last-known-good time are read again for each
document (``agent.runtime.trust_state``), so a rotation applied by one part counts for all.

``trust.signatures``: ``required`` refuses unsigned documents; ``optional`` verifies signed ones
and lets unsigned ones through; ``off`` verifies nothing but still unpacks an envelope (and still
refuses one of the wrong kind). The verification itself is the domain's
(``agent.domain.trust.verify_envelope``), with ``agent.adapters.ed25519.verify`` wired in here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.domain.document import MAX_DOCUMENT_BYTES, DocumentError, loads_strict_json
from agent.domain.manifest import ManifestDoc, ManifestRejected
from agent.domain.schedule import ApplyResult, ScheduleDoc, ScheduleRejected
from agent.domain.trust import (
    ALL,
    MAX_ENVELOPE_OVERHEAD,
    RevocationList,
    TrustContext,
    TrustRejected,
    Verified,
    VerifyFn,
    command_expiry_problem,
    looks_signed,
    parse_envelope_obj,
    parse_revocations,
    peek,
    verify_envelope,
)
from agent.runtime.trust_state import RevocationState, load_roots

log = logging.getLogger("agent.trust")

# An envelope carries a document of up to MAX_DOCUMENT_BYTES, quoted, plus its header.
ENVELOPE_LIMIT = MAX_DOCUMENT_BYTES * 2 + MAX_ENVELOPE_OVERHEAD


@dataclass(frozen=True)
class Opened:
    """The payload to read, and who signed it (None: unsigned, or signatures are off)."""

    payload: bytes
    verified: Verified | None

    def signer_note(self) -> str:
        return "unsigned" if self.verified is None else f"signed by {self.verified.signer()}"


@dataclass(frozen=True)
class TrustUpdate:
    """A trust document as read: the revocation list it carries, or why it is refused."""

    revocations: RevocationList | None
    rejected: TrustRejected | None

    @property
    def version(self) -> int | None:
        return None if self.revocations is None else self.revocations.version


def _default_verify() -> VerifyFn:
    from agent.adapters.ed25519 import verify

    return verify


class TrustGate:
    def __init__(
        self,
        mode: str,
        roots_dir: Path,
        state_dir: Path,
        county: str,
        terminal: str | None,
        *,
        slack_hours: float = 12.0,
        lkg: Callable[[], float | None] | None = None,
        synced: Callable[[], bool] | None = None,
        now: Callable[[], float] = time.time,
        verify: VerifyFn | None = None,
    ) -> None:
        self.mode = mode
        self.roots_dir = Path(roots_dir)
        self.revocations = RevocationState(state_dir)
        self.county = county
        self.terminal = terminal
        self.slack_s = slack_hours * 3600.0
        self._lkg = lkg or (lambda: None)
        self._synced = synced or (lambda: False)
        self._now = now
        self._verify = verify

    @classmethod
    def for_config(cls, cfg: Any, **kw: Any) -> TrustGate:
        """The gate for an ``AgentConfig``: its roots, its state, its clock files."""
        from agent.adapters.kernel_clock import LastKnownGood, kernel_clock_synced

        lkg_file = LastKnownGood(Path(cfg.state_dir) / "clock.lkg")
        kw.setdefault("lkg", lambda: lkg_file.load() or None)
        kw.setdefault("synced", lambda: bool(kernel_clock_synced()))
        t = cfg.trust
        return cls(
            t.signatures,
            t.roots_dir,
            cfg.state_dir,
            cfg.county,
            cfg.terminal,
            slack_hours=t.clock_slack_hours,
            **kw,
        )

    # -- verification ----------------------------------------------------------------------

    def context(self) -> TrustContext:
        return TrustContext(
            county=self.county,
            terminal=self.terminal,
            roots=load_roots(self.roots_dir),
            revocations=self.revocations.load(),
            now=self._now(),
            lkg=self._lkg(),
            synced=self._synced(),
            slack_s=self.slack_s,
        )

    def open(
        self, data: bytes, kind: str, *, layer: str | None = None, unsigned_ok: bool = False
    ) -> Opened:
        """The payload of ``data`` if it may be used as a ``kind`` document; TrustRejected if not.

        ``unsigned_ok``: the caller (an admin at the terminal, as root) takes an unsigned
        document on their own word even though signatures are required.
        """
        obj = peek(data, ENVELOPE_LIMIT)
        if obj is None or not looks_signed(obj):
            if self.mode == "required" and not unsigned_ok and kind != "trust":
                raise TrustRejected(
                    "unsigned",
                    f"the {kind} is not signed and this terminal requires signatures "
                    "(trust.signatures: required)",
                )
            if kind in ("trust",):
                raise TrustRejected("unsigned", "a trust update must be signed by a root")
            return Opened(data, None)
        env = parse_envelope_obj(obj)
        if self.mode == "off" and kind != "trust":
            if env.kind != kind:
                raise TrustRejected(
                    "wrong_kind", f"signed as a {env.kind} document, arrived as a {kind}"
                )
            return Opened(env.payload, None)
        verify = self._verify or _default_verify()
        verified = verify_envelope(env, kind, self.context(), verify, layer=layer)
        return Opened(verified.payload, verified)

    # -- layered documents (schedules, manifests) ---------------------------------------------

    def read_schedule(
        self,
        data: bytes,
        source: str,
        *,
        timezone: str | None = None,
        layer: str | None = None,
        unsigned_ok: bool = False,
    ) -> ScheduleDoc | ScheduleRejected:
        """A schedule from outside, signature first: the document or why it cannot be used."""
        from agent.adapters.schedule_files import read_untrusted

        try:
            opened = self.open(data, "schedule", layer=layer, unsigned_ok=unsigned_ok)
        except TrustRejected as exc:
            return ScheduleRejected(source, [exc.reason()])
        parsed = read_untrusted(opened.payload, source, timezone=timezone)
        return self._bind(parsed, opened, source, ScheduleRejected)

    def read_manifest(
        self, data: bytes, source: str, *, layer: str | None = None
    ) -> ManifestDoc | ManifestRejected:
        from agent.adapters.manifest_files import parse_untrusted_manifest

        try:
            opened = self.open(data, "manifest", layer=layer)
            parsed: Any = parse_untrusted_manifest(opened.payload, source)
        except TrustRejected as exc:
            return ManifestRejected(source, [exc.reason()])
        except ManifestRejected as exc:
            return exc
        return self._bind(parsed, opened, source, ManifestRejected)

    @staticmethod
    def _bind(parsed: Any, opened: Opened, source: str, rejected: type[Exception]) -> Any:
        """A signed document's own county, terminal and layer must be those it was signed for;
        where it names none, the signed ones are filled in (so a county-wide document can
        never be applied as one terminal's layer)."""
        v = opened.verified
        if v is None or isinstance(parsed, Exception):
            return parsed
        layer = "county" if v.to == ALL else "terminal"
        problems = []
        if parsed.county is not None and parsed.county != v.county:
            problems.append(f"names county {parsed.county!r} but was signed for {v.county!r}")
        if v.to == ALL and parsed.terminal is not None:
            problems.append(f"names terminal {parsed.terminal!r} but was signed for the county")
        if v.to != ALL and parsed.terminal not in (None, v.to):
            problems.append(f"names terminal {parsed.terminal!r} but was signed for {v.to!r}")
        if parsed.layer is not None and parsed.layer != layer:
            problems.append(f"says layer {parsed.layer!r} but was signed as the {layer} layer")
        if problems:
            reasons = [f"signature: the document {p} [wrong_target]" for p in problems]
            return rejected(source, reasons, version=parsed.version)  # type: ignore[call-arg]
        parsed.county = v.county
        parsed.layer = layer
        if v.to != ALL:
            parsed.terminal = v.to
        return parsed

    # -- commands ---------------------------------------------------------------------------

    def open_command(self, payload: bytes) -> bytes:
        """The command inside a signed envelope (checked, and not expired); TrustRejected if not."""
        opened = self.open(payload, "command")
        if opened.verified is None:
            return opened.payload
        try:
            msg = loads_strict_json(opened.payload, "cmd", len(opened.payload))
        except DocumentError as exc:
            raise TrustRejected("malformed", f"the signed command: {exc.message}") from None
        if not isinstance(msg, dict):
            raise TrustRejected("malformed", "the signed command is not a JSON object")
        if msg.get("terminal") not in (None, opened.verified.to):
            raise TrustRejected("wrong_terminal", "the command names another terminal")
        problem = command_expiry_problem(msg.get("ts"), msg.get("expires"), self.context())
        if problem is not None:
            raise problem
        return opened.payload

    # -- trust updates ----------------------------------------------------------------------

    def read_trust(self, data: bytes) -> TrustUpdate:
        """A root-signed revocation list (whatever ``trust.signatures`` says), or why not; any
        thread (it only reads)."""
        try:
            opened = self.open(data, "trust", layer="county")
            return TrustUpdate(parse_revocations(opened.payload), None)
        except TrustRejected as exc:
            return TrustUpdate(None, exc)

    def apply_update(self, update: TrustUpdate, source: str) -> ApplyResult:
        """Apply what ``read_trust`` returned; the verdict as an ``ApplyResult`` (layer county)."""
        if update.rejected is not None or update.revocations is None:
            reason = update.rejected.reason() if update.rejected else "not a trust update"
            return ApplyResult("county", None, "rejected", [reason], self.applied_version())
        new = update.revocations
        status, previous, reasons = self.revocations.apply(new)
        level = logging.INFO if status == "applied" else logging.WARNING
        log.log(level, "revocation list v%d from %s: %s %s", new.version, source, status, reasons)
        return ApplyResult("county", new.version, status, reasons, previous or None)

    def apply_trust(self, data: bytes, source: str) -> ApplyResult:
        return self.apply_update(self.read_trust(data), source)

    def applied_version(self) -> int | None:
        return self.revocations.load().version or None
