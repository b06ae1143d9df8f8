"""``countyctl keys``: province roots, county signing keys, their certificates and revocations.

    countyctl keys init-root --id R --dir D            D/R.key (private, 0600) and D/R.pub
    countyctl keys new-county --id K --county C --dir D [--root D/R.key] [--days 365]
    countyctl keys certify --root D/R.key --pub D/K.pub --county C [--days 365]
    countyctl keys revoke --root D/R.key --revoke K1,K2 [--version N] --out trust.json
    countyctl keys list --dir D [--roots DIR]

A private key file is JSON (``key_id``, ``role``, ``county``, ``private_key`` as base64 of the
32-byte Ed25519 seed), written 0600 and never overwritten; one that the group or others may read
is refused, like the agent's MQTT key. A ``.pub`` file is one line of base64: the format of the
terminals' roots folder (``trust.roots_dir``), so a root's ``.pub`` is installed as it is.
A certificate (``K.cert.json``) is public; ``countyctl sign`` takes it from beside the key.
"""

from __future__ import annotations

import argparse
import binascii
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.cli.county.client import ToolError
from agent.domain.trust import (
    ALL,
    TrustRejected,
    b64,
    cert_message,
    parse_certificate,
    parse_envelope,
    parse_revocations,
    parse_time,
    signed_message,
    time_text,
)
from agent.domain.trust.envelope import ID_RE

DEFAULT_DAYS = 365.0


@dataclass(frozen=True)
class KeyFile:
    key_id: str
    role: str  # root | county
    county: str | None
    seed: bytes
    path: Path

    def public(self) -> bytes:
        from agent.adapters.ed25519 import public_of

        return public_of(self.seed)

    def sign(self, message: bytes) -> bytes:
        from agent.adapters.ed25519 import sign

        return sign(self.seed, message)


def _check_id(value: str, what: str) -> str:
    if not ID_RE.match(value or ""):
        raise ToolError(f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return value


def write_private(path: Path, obj: dict[str, Any]) -> None:
    """Create ``path`` 0600 with ``obj``; an existing file is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ToolError(f"{path} exists; a key is never overwritten (move it away first)") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_public(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_private(path: Path) -> KeyFile:
    """A private key file, refused when the group or others may read it or it is malformed."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ToolError(f"cannot read the key {path}: {exc.strerror}") from None
    if st.st_mode & 0o077:
        raise ToolError(
            f"{path} may be read by others (mode {st.st_mode & 0o777:o}); "
            f"a private key must be 0600: chmod 600 {path}"
        )
    try:
        obj = json.loads(path.read_text("utf-8"))
        seed = binascii.a2b_base64(obj["private_key"], strict_mode=True)
        role, key_id = obj["role"], obj["key_id"]
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ToolError(f"{path} is not a countyctl private key ({exc})") from None
    if len(seed) != 32 or role not in ("root", "county") or not ID_RE.match(str(key_id)):
        raise ToolError(f"{path} is not a countyctl private key")
    return KeyFile(key_id, role, obj.get("county"), seed, path)


def load_public(path: Path) -> bytes:
    try:
        key = binascii.a2b_base64(path.read_text("ascii").strip(), strict_mode=True)
    except (OSError, UnicodeDecodeError, binascii.Error, ValueError) as exc:
        raise ToolError(f"{path} is not a public key file ({exc})") from None
    if len(key) != 32:
        raise ToolError(f"{path} is not a 32-byte Ed25519 public key")
    return key


def new_key(folder: Path, key_id: str, role: str, county: str | None = None) -> KeyFile:
    from agent.adapters.ed25519 import generate

    seed, public = generate()
    path = folder / f"{key_id}.key"
    obj = {"key_id": key_id, "role": role, "county": county, "private_key": b64(seed)}
    write_private(path, obj)
    write_public(folder / f"{key_id}.pub", b64(public) + "\n")
    return KeyFile(key_id, role, county, seed, path)


def certify(
    root: KeyFile,
    key_id: str,
    county: str,
    public_key: bytes,
    *,
    days: float = DEFAULT_DAYS,
    not_before: float | None = None,
) -> dict[str, str]:
    """A root-signed certificate for a county key, as JSON data."""
    if root.role != "root":
        raise ToolError(f"{root.path} is a county key; only a root certifies keys")
    start = time.time() - 3600 if not_before is None else not_before
    nb, exp = time_text(start), time_text(start + days * 86400)
    sig = root.sign(cert_message(key_id, county, public_key, nb, exp, root.key_id))
    cert = {
        "key_id": key_id,
        "county": county,
        "public_key": b64(public_key),
        "not_before": nb,
        "expires": exp,
        "root": root.key_id,
        "sig": b64(sig),
    }
    parse_certificate(cert)  # the tool never writes what a terminal would refuse to read
    return cert


def envelope(
    key: KeyFile,
    cert: dict[str, Any] | None,
    kind: str,
    county: str,
    to: str,
    payload: bytes,
) -> bytes:
    """The signed envelope (compact JSON bytes) for ``payload``."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError("the document is not UTF-8 text") from None
    sig = key.sign(signed_message(kind, county, to, key.key_id, payload))
    obj = {
        "rde_signed": 1,
        "kind": kind,
        "county": county,
        "to": to,
        "key_id": key.key_id,
        "cert": cert,
        "payload": text,
        "sig": b64(sig),
    }
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def revocation_envelope(
    root: KeyFile, revoked: list[str], version: int, county: str = ALL, note: str | None = None
) -> bytes:
    if root.role != "root":
        raise ToolError("a revocation list is signed by a root key")
    body: dict[str, Any] = {"version": version, "issued": time_text(time.time())}
    body["revoked"] = sorted(set(revoked))
    if note:
        body["note"] = note
    payload = json.dumps(body, separators=(",", ":")).encode()
    parse_revocations(payload)
    return envelope(root, None, "trust", county, ALL, payload)


def load_cert_for(key: KeyFile, cert_path: Path | None = None) -> dict[str, Any]:
    path = cert_path or key.path.with_name(f"{key.key_id}.cert.json")
    try:
        cert = json.loads(path.read_text("utf-8"))
        parse_certificate(cert)
    except OSError as exc:
        raise ToolError(
            f"no certificate for {key.key_id} at {path} ({exc.strerror}); "
            "certify it: countyctl keys certify"
        ) from None
    except (ValueError, TrustRejected) as exc:
        raise ToolError(f"{path} is not a valid certificate: {exc}") from None
    if cert["key_id"] != key.key_id:
        raise ToolError(f"{path} certifies {cert['key_id']}, not {key.key_id}")
    return cert


# -- the sub-commands -------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    sk = sub.add_parser("keys", help="signing keys: roots, county keys, certificates, revocation")
    ks = sk.add_subparsers(dest="keys_command", required=True)
    a = ks.add_parser("init-root", help="a new province root key")
    a.add_argument("--id", required=True)
    a.add_argument("--dir", type=Path, required=True)
    b = ks.add_parser("new-county", help="a new county signing key (certified with --root)")
    b.add_argument("--id", required=True)
    b.add_argument("--county", required=True)
    b.add_argument("--dir", type=Path, required=True)
    b.add_argument("--root", type=Path, default=None, help="certify it with this root key now")
    b.add_argument("--days", type=float, default=DEFAULT_DAYS)
    c = ks.add_parser("certify", help="certify a county public key with a root key")
    c.add_argument("--root", type=Path, required=True)
    c.add_argument("--pub", type=Path, required=True, help="the county key's .pub file")
    c.add_argument("--county", required=True)
    c.add_argument("--days", type=float, default=DEFAULT_DAYS)
    d = ks.add_parser("revoke", help="a root-signed revocation list (publish it, or copy it)")
    d.add_argument("--root", type=Path, required=True)
    d.add_argument("--revoke", default="", help="key ids, comma separated")
    d.add_argument("--version", type=int, default=None, help="default: the --out file's + 1")
    d.add_argument("--county", default=ALL, help="the county it is for (default: all)")
    d.add_argument("--note", default=None)
    d.add_argument("--out", type=Path, required=True)
    e = ks.add_parser("list", help="the keys and certificates in a folder, and their state")
    e.add_argument("--dir", type=Path, required=True)
    sk.set_defaults(func=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    which = args.keys_command
    if which == "init-root":
        key = new_key(args.dir, _check_id(args.id, "--id"), "root")
        print(
            f"root key {key.key_id}: private {key.path} (keep it offline), public "
            f"{key.path.with_suffix('.pub')} (install it in each terminal's trust.roots_dir)"
        )
        return 0
    if which == "new-county":
        key = new_key(
            args.dir, _check_id(args.id, "--id"), "county", _check_id(args.county, "--county")
        )
        print(f"county key {key.key_id} for {key.county}: {key.path}")
        if args.root is not None:
            cert = certify(
                load_private(args.root), key.key_id, args.county, key.public(), days=args.days
            )
            out = args.dir / f"{key.key_id}.cert.json"
            write_public(out, json.dumps(cert, indent=1) + "\n")
            print(f"certified by {cert['root']} until {cert['expires']}: {out}")
        return 0
    if which == "certify":
        key_id = _check_id(args.pub.name.removesuffix(".pub"), "key id")
        cert = certify(
            load_private(args.root),
            key_id,
            _check_id(args.county, "--county"),
            load_public(args.pub),
            days=args.days,
        )
        out = args.pub.with_name(f"{key_id}.cert.json")
        write_public(out, json.dumps(cert, indent=1) + "\n")
        print(
            f"{key_id} certified by {cert['root']} for {args.county} until {cert['expires']}: {out}"
        )
        return 0
    if which == "revoke":
        return _revoke(args)
    return _list(args.dir)


def _revoke(args: argparse.Namespace) -> int:
    revoked = [_check_id(x.strip(), "key id") for x in args.revoke.split(",") if x.strip()]
    version = args.version
    previous: list[str] = []
    if args.out.exists():
        try:
            env = parse_envelope(args.out.read_bytes(), 4 * 1024 * 1024)
            old = parse_revocations(env.payload)
        except (OSError, TrustRejected) as exc:
            raise ToolError(f"{args.out} exists but is not a revocation list: {exc}") from None
        previous = sorted(old.revoked)
        version = version or old.version + 1
        if version <= old.version:
            raise ToolError(f"--version must be above {old.version}, the version of {args.out}")
    data = revocation_envelope(
        load_private(args.root), previous + revoked, version or 1, args.county, args.note
    )
    write_public(args.out, data.decode("utf-8") + "\n")
    print(f"revocation list v{version or 1} ({len(set(previous + revoked))} key(s)) -> {args.out}")
    print("publish it retained on rde/v1/{county}/all/trust, or copy it into the inbox folders")
    return 0


def _list(folder: Path) -> int:
    now = time.time()
    rows = []
    for path in sorted(folder.glob("*.key")):
        try:
            key = load_private(path)
        except ToolError as exc:
            rows.append(f"  {path.name}: {exc}")
            continue
        line = f"  {key.key_id:24} {key.role:7} {key.county or '':12}"
        if key.role == "county":
            cert_path = path.with_name(f"{key.key_id}.cert.json")
            try:
                cert = load_cert_for(key, cert_path)
                state = "EXPIRED" if parse_time(cert["expires"]) < now else "valid"
                line += f" certified by {cert['root']} until {cert['expires']} ({state})"
            except ToolError:
                line += " NOT CERTIFIED"
        rows.append(line)
    for path in sorted(folder.glob("*.pub")):
        if not path.with_suffix(".key").exists():
            rows.append(f"  {path.stem:24} public key only")
    print(f"keys in {folder}:")
    print("\n".join(rows) if rows else "  (none)")
    return 0
