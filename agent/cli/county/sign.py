"""``countyctl sign FILE --key K`` writes the signed envelope; ``countyctl verify FILE`` says who
signed a document and whether it holds for a county (and terminal) under a roots folder.

    countyctl sign schedule.yaml --key keys/c1-2026a.key [--out schedule.signed.json]
    countyctl verify schedule.signed.json --roots keys/ --county c1 [--terminal t-001]

The kind (schedule or manifest), the county and the target are read from the document itself
(``county``, ``terminal``, ``layer``) unless given; a county key signs only for its own county.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.cli.county.client import ToolError
from agent.cli.county.keys import KeyFile, envelope, load_cert_for, load_private
from agent.domain.trust import ALL, KINDS, TrustRejected, peek


def add_parser(sub: Any) -> None:
    s = sub.add_parser("sign", help="sign a schedule, manifest or command file with a county key")
    s.add_argument("file", type=Path)
    s.add_argument("--key", type=Path, required=True, help="the county key (.key, 0600)")
    s.add_argument("--cert", type=Path, default=None, help="default: KEY_ID.cert.json beside it")
    s.add_argument("--kind", choices=[k for k in KINDS if k != "trust"], default=None)
    s.add_argument("--county", default=None, help="default: the document's, else the key's")
    s.add_argument("--terminal", default=None, help="default: the document's, else all")
    s.add_argument("--out", type=Path, default=None, help="default: FILE.signed.json")
    s.set_defaults(func=cmd_sign)
    v = sub.add_parser("verify", help="who signed a document and whether it holds")
    v.add_argument("file", type=Path)
    v.add_argument("--roots", type=Path, required=True, help="folder of root .pub files")
    v.add_argument("--county", required=True)
    v.add_argument("--terminal", default=None)
    v.add_argument("--kind", choices=list(KINDS), default=None)
    v.add_argument("--revocations", type=Path, default=None, help="a revocation list to apply")
    v.set_defaults(func=cmd_verify)


def document_target(data: bytes, kind: str | None) -> tuple[str, str | None, str | None]:
    """(kind, county, terminal) as the document states them (schedule or manifest)."""
    from agent.domain.manifest import is_manifest
    from agent.runtime.documents import parse_document

    try:
        plain = parse_document(data, "document").plain()
    except Exception as exc:
        raise ToolError(f"the document cannot be read: {exc}") from None
    if not isinstance(plain, dict):
        raise ToolError("the document must be a mapping")
    found = kind or ("manifest" if is_manifest(plain) else "schedule")
    county, terminal = plain.get("county"), plain.get("terminal")
    return (
        found,
        county if isinstance(county, str) else None,
        (terminal if isinstance(terminal, str) else None),
    )


def sign_bytes(
    data: bytes,
    key: KeyFile,
    cert: dict[str, Any],
    *,
    kind: str | None = None,
    county: str | None = None,
    terminal: str | None = None,
) -> bytes:
    """The envelope of ``data`` signed by ``key`` (a certified county key)."""
    if key.role != "county":
        raise ToolError("documents are signed with a county key; roots only certify and revoke")
    found, doc_county, doc_terminal = document_target(data, kind)
    county = county or doc_county or cert["county"]
    if county != cert["county"]:
        raise ToolError(f"key {key.key_id} may sign for county {cert['county']}, not {county}")
    if doc_county and doc_county != county:
        raise ToolError(f"the document is for county {doc_county}, not {county}")
    to = terminal or doc_terminal or ALL
    if doc_terminal and doc_terminal != to:
        raise ToolError(f"the document is for terminal {doc_terminal}, not {to}")
    return envelope(key, cert, found, county, to, data)


def cmd_sign(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise ToolError(f"cannot read {args.file}: {exc.strerror}") from None
    key = load_private(args.key)
    cert = load_cert_for(key, args.cert)
    signed = sign_bytes(data, key, cert, kind=args.kind, county=args.county, terminal=args.terminal)
    out = args.out or args.file.with_name(args.file.name + ".signed.json")
    out.write_bytes(signed + b"\n")
    print(f"{args.file} signed by {key.key_id} ({cert['county']}, until {cert['expires']}): {out}")
    return 0


def verify_report(
    data: bytes,
    roots: Path,
    county: str,
    terminal: str | None,
    kind: str | None = None,
    revocations: bytes | None = None,
) -> tuple[bool, str]:
    """(holds, one line saying who signed and why it holds or not)."""
    from agent.runtime.trust import TrustGate

    obj = peek(data, 4 * 1024 * 1024)
    found = kind or (obj.get("kind") if isinstance(obj, dict) else None)
    if found not in KINDS:
        return False, "not a signed envelope (no kind): unsigned, or not a document at all"
    with tempfile.TemporaryDirectory() as state:
        gate = TrustGate("required", roots, Path(state), county, terminal, now=time.time)
        if revocations is not None:
            result = gate.apply_trust(revocations, "--revocations")
            if result.status == "rejected":
                return False, f"the revocation list does not hold: {'; '.join(result.reasons)}"
        try:
            opened = gate.open(data, found)
        except TrustRejected as exc:
            return False, f"{found}: does NOT hold: {exc.message} [{exc.code}]"
    v = opened.verified
    assert v is not None
    until = f", certificate until {v.cert_expires}" if v.cert_expires else ""
    return True, f"{found} for {v.county}/{v.to}: signed by {v.signer()}{until}: holds"


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
        revs = args.revocations.read_bytes() if args.revocations else None
    except OSError as exc:
        raise ToolError(f"cannot read {exc.filename}: {exc.strerror}") from None
    ok, line = verify_report(data, args.roots, args.county, args.terminal, args.kind, revs)
    print(f"{args.file}: {line}")
    return 0 if ok else 1
