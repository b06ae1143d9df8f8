"""Signed documents: the envelope, county certificates, revocation lists and their verification.

Stdlib only; the Ed25519 verify function is injected (``agent.adapters.ed25519`` provides it,
wired by ``agent.runtime.trust``). See ``docs/trust.md``.
"""

from agent.domain.trust.envelope import (
    ALL,
    KINDS,
    MAX_ENVELOPE_OVERHEAD,
    Certificate,
    Envelope,
    TrustRejected,
    b64,
    cert_message,
    looks_signed,
    parse_certificate,
    parse_envelope,
    parse_envelope_obj,
    parse_time,
    peek,
    signed_message,
    time_text,
)
from agent.domain.trust.revocation import EMPTY, RevocationList, parse_revocations
from agent.domain.trust.verify import (
    MAX_COMMAND_LIFETIME_S,
    TrustContext,
    Verified,
    VerifyFn,
    command_expiry_problem,
    verify_envelope,
)

__all__ = [
    "ALL",
    "EMPTY",
    "KINDS",
    "MAX_COMMAND_LIFETIME_S",
    "MAX_ENVELOPE_OVERHEAD",
    "Certificate",
    "Envelope",
    "RevocationList",
    "TrustContext",
    "TrustRejected",
    "Verified",
    "VerifyFn",
    "b64",
    "cert_message",
    "command_expiry_problem",
    "looks_signed",
    "parse_certificate",
    "parse_envelope",
    "parse_envelope_obj",
    "parse_revocations",
    "parse_time",
    "peek",
    "signed_message",
    "time_text",
    "verify_envelope",
]
