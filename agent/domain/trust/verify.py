"""Whether a signed envelope holds for this terminal: the whole check, before the payload is read.

Pure: the installed roots, the applied revocation list, the clock readings and the Ed25519
verify function are all handed in (``agent.adapters.ed25519`` provides the function; tests may
hand in another). The order is cheap checks first (kind, county, target, key chain, dates, the
revocation list) and the two signature checks last; any failure is a ``TrustRejected`` naming
the reason.

Time: a terminal may have no real-time clock. Expiry is judged against the later of the clock
and the last-known-good time (a clock reset to 1970 cannot revive an expired certificate), with
``slack_s`` of tolerance. A certificate's ``not_before`` refuses a document only when the clock
is synchronised: a terminal whose clock is behind must still take a key certified yesterday.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.domain.trust.envelope import (
    ALL,
    Certificate,
    Envelope,
    TrustRejected,
    parse_time,
    time_text,
)
from agent.domain.trust.revocation import EMPTY, RevocationList

VerifyFn = Callable[[bytes, bytes, bytes], bool]  # (public key, signature, message) -> ok
# A command lives at most this long between its ``ts`` and its ``expires``: replay protection
# beyond the command ledger's memory must not depend on a long-lived signature.
MAX_COMMAND_LIFETIME_S = 24 * 3600.0


@dataclass(frozen=True)
class TrustContext:
    """What one terminal trusts right now."""

    county: str
    terminal: str | None  # None: a tool that checks for any terminal of the county
    roots: dict[str, bytes]  # root key id -> public key (installed with the agent)
    revocations: RevocationList = EMPTY
    now: float = 0.0  # the wall clock
    lkg: float | None = None  # last-known-good time
    synced: bool = False
    slack_s: float = 12 * 3600.0

    @property
    def effective_now(self) -> float:
        return max(self.now, self.lkg or 0.0)


@dataclass(frozen=True)
class Verified:
    """Who signed an envelope that holds, and for what."""

    kind: str
    county: str
    to: str
    key_id: str
    root: str
    payload: bytes = field(repr=False)
    cert_expires: str | None = None

    def signer(self) -> str:
        via = "" if self.root == self.key_id else f" (certified by root {self.root})"
        return f"{self.key_id}{via}"


def _check_target(env: Envelope, want_kind: str, ctx: TrustContext, layer: str | None) -> None:
    if env.kind != want_kind:
        raise TrustRejected(
            "wrong_kind", f"signed as a {env.kind} document, arrived where a {want_kind} belongs"
        )
    if env.county != ctx.county and not (env.kind == "trust" and env.county == ALL):
        raise TrustRejected(
            "wrong_county", f"signed for county {env.county!r}, this is county {ctx.county!r}"
        )
    if env.kind == "command" and env.to == ALL:
        raise TrustRejected("wrong_terminal", "a command must name its terminal")
    if ctx.terminal is not None and env.to not in (ctx.terminal, ALL):
        raise TrustRejected(
            "wrong_terminal", f"signed for terminal {env.to!r}, this is {ctx.terminal!r}"
        )
    if layer == "county" and env.to != ALL:
        raise TrustRejected(
            "wrong_terminal", f"signed for terminal {env.to!r}, arrived as the county's layer"
        )
    if layer == "terminal" and env.to == ALL:
        raise TrustRejected(
            "wrong_terminal", "signed for the whole county, arrived as one terminal's layer"
        )


def _check_cert(cert: Certificate, env: Envelope, ctx: TrustContext, verify: VerifyFn) -> None:
    if cert.key_id != env.key_id:
        raise TrustRejected(
            "unknown_key", f"key {env.key_id!r} signed, but the certificate is for {cert.key_id!r}"
        )
    root_key = ctx.roots.get(cert.root)
    if root_key is None:
        raise TrustRejected(
            "unknown_key",
            f"key {env.key_id!r} is certified by {cert.root!r}, which is not an installed root",
        )
    if cert.root in ctx.revocations.revoked:
        raise TrustRejected("revoked", f"root {cert.root!r} is revoked")
    if cert.county != env.county:
        raise TrustRejected(
            "wrong_county",
            f"key {cert.key_id!r} may sign for county {cert.county!r}, not {env.county!r}",
        )
    now = ctx.effective_now
    if parse_time(cert.expires) + ctx.slack_s < now:
        raise TrustRejected(
            "expired",
            f"the certificate of key {cert.key_id!r} expired at {cert.expires} "
            f"(this terminal's time is at least {time_text(now)})",
        )
    if ctx.synced and parse_time(cert.not_before) > ctx.now + ctx.slack_s:
        raise TrustRejected(
            "not_yet_valid",
            f"the certificate of key {cert.key_id!r} is valid from {cert.not_before} only",
        )
    if not verify(root_key, cert.sig, cert.message()):
        raise TrustRejected(
            "bad_certificate", f"the certificate of key {cert.key_id!r} is not signed by its root"
        )


def verify_envelope(
    env: Envelope,
    want_kind: str,
    ctx: TrustContext,
    verify: VerifyFn,
    *,
    layer: str | None = None,
) -> Verified:
    """The envelope's signer and payload if it holds for ``ctx``; TrustRejected otherwise.

    ``layer`` ("terminal" | "county"), when the channel says which, must agree with ``to``.
    Trust updates are signed by a root itself (no certificate); every other kind by a county
    key that an installed root certified.
    """
    _check_target(env, want_kind, ctx, layer)
    if env.key_id in ctx.revocations.revoked:
        raise TrustRejected("revoked", f"key {env.key_id!r} is revoked")
    if env.kind == "trust":
        if env.cert is not None or env.key_id not in ctx.roots:
            raise TrustRejected(
                "not_a_root",
                f"trust updates must be signed by an installed root; {env.key_id!r} is not one",
            )
        public_key, root, expires = ctx.roots[env.key_id], env.key_id, None
    else:
        if env.cert is None:
            if env.key_id in ctx.roots:
                raise TrustRejected(
                    "not_a_county_key",
                    f"{env.kind} documents are signed by a county key; {env.key_id!r} is a root",
                )
            raise TrustRejected(
                "unknown_key", f"key {env.key_id!r} comes without a certificate from a root"
            )
        _check_cert(env.cert, env, ctx, verify)
        public_key, root, expires = env.cert.public_key, env.cert.root, env.cert.expires
    if not verify(public_key, env.sig, env.message()):
        raise TrustRejected(
            "bad_signature", f"the signature of key {env.key_id!r} does not match the document"
        )
    return Verified(env.kind, env.county, env.to, env.key_id, root, env.payload, expires)


def command_expiry_problem(ts: object, expires: object, ctx: TrustContext) -> TrustRejected | None:
    """Why a signed command's ``ts``/``expires`` refuse it (expired, or living too long)."""
    if not isinstance(expires, str) or not isinstance(ts, str):
        return TrustRejected("malformed", "a signed command needs ts and expires (UTC, ...Z)")
    try:
        issued, until = parse_time(ts), parse_time(expires)
    except TrustRejected as exc:
        return exc
    if until - issued > MAX_COMMAND_LIFETIME_S or until < issued:
        return TrustRejected(
            "malformed", "a command's expires must be after its ts and at most 24 hours later"
        )
    now = ctx.effective_now
    if until < now:
        return TrustRejected(
            "expired", f"the command expired at {expires} (this terminal's time: {time_text(now)})"
        )
    return None
