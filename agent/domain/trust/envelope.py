"""The signed envelope and the county certificate: their strict shape and the exact bytes signed.

A signed document travels as one JSON object (``docs/trust.md``)::

    {"rde_signed": 1, "kind": "schedule", "county": "c1", "to": "all", "key_id": "c1-2026a",
     "cert": {...}, "payload": "<the document's exact text>", "sig": "<base64, 64 bytes>"}

The signature covers a domain-separated message built from ``kind``, ``county``, ``to``,
``key_id`` and the payload's UTF-8 bytes, so the same bytes verify whether they came over MQTT,
through the satellite folder or on a USB stick, and a signature made for one kind of document or
one target never fits another. The header fields are ids (no newline), so the message splits one
way only. There is no algorithm field: Ed25519 is the only one, and an object that names one is
refused rather than read.

Parsing is strict and total: unknown or missing fields, wrong types, bad base64, a signature that
is not 64 bytes, all end in ``TrustRejected`` with the reason, before anything is verified.
"""

from __future__ import annotations

import binascii
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from agent.domain.document import DocumentError, loads_strict_json

ENVELOPE_VERSION = 1
KINDS = ("schedule", "manifest", "command", "trust")
SIG_BYTES = 64
KEY_BYTES = 32
ALL = "all"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# The envelope's own text beyond its payload: header, certificate, base64 and quoting.
MAX_ENVELOPE_OVERHEAD = 8 * 1024
ENVELOPE_KEYS = ("rde_signed", "kind", "county", "to", "key_id", "cert", "payload", "sig")
CERT_KEYS = ("key_id", "county", "public_key", "not_before", "expires", "root", "sig")
# Names that only make sense in some other signature scheme; refused by name, so a document
# that carries one is never mistaken for an unsigned one.
FOREIGN_KEYS = ("alg", "signature", "signatures", "jwk", "kid", "x5c", "typ", "protected")
SIGNED_HINT_KEYS = frozenset(ENVELOPE_KEYS) | frozenset(FOREIGN_KEYS)


class TrustRejected(Exception):
    """A signed document (or a missing signature) that cannot be accepted; ``code`` is stable
    for tests and tools, ``message`` says what and why for the county technician."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def reason(self) -> str:
        return f"signature: {self.message} [{self.code}]"


@dataclass(frozen=True)
class Certificate:
    """A county signing key, certified by a root: who may sign for which county, and when."""

    key_id: str
    county: str
    public_key: bytes
    not_before: str
    expires: str
    root: str
    sig: bytes

    def message(self) -> bytes:
        return cert_message(
            self.key_id, self.county, self.public_key, self.not_before, self.expires, self.root
        )

    def to_json(self) -> dict[str, str]:
        return {
            "key_id": self.key_id,
            "county": self.county,
            "public_key": b64(self.public_key),
            "not_before": self.not_before,
            "expires": self.expires,
            "root": self.root,
            "sig": b64(self.sig),
        }


@dataclass(frozen=True)
class Envelope:
    kind: str
    county: str
    to: str
    key_id: str
    cert: Certificate | None
    payload: bytes
    sig: bytes

    def message(self) -> bytes:
        return signed_message(self.kind, self.county, self.to, self.key_id, self.payload)

    def to_json(self) -> dict[str, Any]:
        return {
            "rde_signed": ENVELOPE_VERSION,
            "kind": self.kind,
            "county": self.county,
            "to": self.to,
            "key_id": self.key_id,
            "cert": None if self.cert is None else self.cert.to_json(),
            "payload": self.payload.decode("utf-8"),
            "sig": b64(self.sig),
        }


def signed_message(kind: str, county: str, to: str, key_id: str, payload: bytes) -> bytes:
    """The exact bytes a document signature covers."""
    head = "\n".join(("rde-signed/1", kind, county, to, key_id)) + "\n"
    return head.encode("ascii") + payload


def cert_message(
    key_id: str, county: str, public_key: bytes, not_before: str, expires: str, root: str
) -> bytes:
    """The exact bytes a root's signature on a certificate covers."""
    fields = ("rde-cert/1", key_id, county, b64(public_key), not_before, expires, root)
    return "\n".join(fields).encode("ascii")


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def unb64(text: Any, what: str, size: int) -> bytes:
    """Strict base64 of exactly ``size`` bytes, or TrustRejected."""
    if not isinstance(text, str) or len(text) > 4 * size:
        raise TrustRejected("malformed", f"{what} must be base64 text of {size} bytes")
    try:
        raw = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TrustRejected("malformed", f"{what} is not valid base64") from None
    if len(raw) != size:
        raise TrustRejected("malformed", f"{what} is {len(raw)} bytes, must be {size}")
    return raw


def parse_time(text: str) -> float:
    """A certificate or command time (``YYYY-MM-DDTHH:MM:SSZ``) as epoch seconds."""
    if not isinstance(text, str) or not TS_RE.match(text):
        raise TrustRejected("malformed", f"{text!r:.40} is not a UTC time YYYY-MM-DDTHH:MM:SSZ")
    try:
        when = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise TrustRejected("malformed", f"{text!r} is not a real date and time") from None
    return when.replace(tzinfo=dt.UTC).timestamp()


def time_text(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _exact_keys(obj: Any, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise TrustRejected("malformed", f"{what} must be a JSON object")
    foreign = [k for k in obj if k in FOREIGN_KEYS]
    if foreign:
        raise TrustRejected(
            "foreign_format",
            f"{what} names {foreign[0]!r}; signed documents are Ed25519 envelopes only "
            "(no algorithm is chosen by the sender)",
        )
    unknown = [k for k in obj if k not in keys]
    if unknown:
        raise TrustRejected("malformed", f"{what}: unknown field {unknown[0][:40]!r}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise TrustRejected("malformed", f"{what}: field {missing[0]!r} is missing")
    return obj


def _id(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not ID_RE.match(value):
        raise TrustRejected("malformed", f"{what}.{key} must be an id (letters, digits, . _ -)")
    return value


def parse_certificate(obj: Any) -> Certificate:
    c = _exact_keys(obj, CERT_KEYS, "cert")
    for key in ("not_before", "expires"):
        parse_time(c[key])
    return Certificate(
        key_id=_id(c, "key_id", "cert"),
        county=_id(c, "county", "cert"),
        public_key=unb64(c["public_key"], "cert.public_key", KEY_BYTES),
        not_before=c["not_before"],
        expires=c["expires"],
        root=_id(c, "root", "cert"),
        sig=unb64(c["sig"], "cert.sig", SIG_BYTES),
    )


def looks_signed(obj: Any) -> bool:
    """Whether a parsed document is (or pretends to be) a signed envelope."""
    return isinstance(obj, dict) and any(k in SIGNED_HINT_KEYS for k in obj)


def parse_envelope_obj(obj: Any) -> Envelope:
    e = _exact_keys(obj, ENVELOPE_KEYS, "envelope")
    version = e["rde_signed"]
    if type(version) is not int or version != ENVELOPE_VERSION:
        raise TrustRejected("malformed", f"rde_signed must be {ENVELOPE_VERSION}")
    kind = e["kind"]
    if kind not in KINDS:
        raise TrustRejected("malformed", f"kind must be one of {', '.join(KINDS)}")
    payload = e["payload"]
    if not isinstance(payload, str):
        raise TrustRejected("malformed", "payload must be the document's text")
    try:
        raw = payload.encode("utf-8")
    except UnicodeEncodeError:
        raise TrustRejected("malformed", "payload is not valid Unicode text") from None
    cert = None if e["cert"] is None else parse_certificate(e["cert"])
    return Envelope(
        kind=kind,
        county=_id(e, "county", "envelope"),
        to=_id(e, "to", "envelope"),
        key_id=_id(e, "key_id", "envelope"),
        cert=cert,
        payload=raw,
        sig=unb64(e["sig"], "sig", SIG_BYTES),
    )


def peek(data: bytes, limit: int) -> Any:
    """The document as plain JSON when it is a JSON object, else None (YAML, not JSON at all).

    Only a document that starts with ``{`` is looked at; a JSON object that is broken or too
    large is refused here, since it may be a damaged envelope.
    """
    head = data[:64].lstrip()
    if not head.startswith(b"{"):
        return None
    try:
        return loads_strict_json(data, "envelope", limit)
    except DocumentError:
        return None


def parse_envelope(data: bytes, limit: int) -> Envelope:
    """Parse an envelope from bytes (at most ``limit`` bytes); TrustRejected on any problem."""
    if len(data) > limit:
        raise TrustRejected("too_large", f"the envelope is {len(data)} bytes, limit {limit}")
    try:
        obj = loads_strict_json(data, "envelope", limit)
    except DocumentError as exc:
        raise TrustRejected("malformed", f"envelope: {exc.message}") from None
    return parse_envelope_obj(obj)
