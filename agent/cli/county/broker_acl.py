"""``countyctl broker-acl``: the county Mosquitto's ACL, password file and client certificates.

The ACL is rendered from ``agent.domain.topics`` so the broker's rules cannot drift from the
topics the agent and the tools really use. Terminals get ``pattern`` lines (``%u`` is the
username: the certificate CN or the password-file user, which is the terminal id): publish only
on the UP suffixes under their own root, read only their own DOWN topics and the county-wide
layers. County tools get ``user`` blocks with county-wide rights. The shipped configs
(``config/mosquitto/``) set ``use_username_as_clientid`` so one identity cannot take another's
client id and knock it off the broker.

Passwords are kept across runs (a terminal's password file does not change when the roster
grows); ``mosquitto_passwd -U`` hashes the whole file in one call. Certificates are made with the
``openssl`` CLI, EC P-256, one key per identity, never overwritten.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent.cli.county.client import ToolError
from agent.cli.county.roster import check_id as _check_id
from agent.cli.county.roster import parse_roster
from agent.domain import topics as t

TRUST = getattr(t, "TRUST", "trust")
TRUST_ACK = getattr(t, "TRUST_ACK", "trust/ack")
UP = tuple(dict.fromkeys((*t.UP, TRUST_ACK)))
# The trust list is county-wide only: no per-terminal trust topic to read.
DOWN = tuple(s for s in t.DOWN if s != TRUST)
COUNTY_WIDE = (t.SCHEDULE, t.LIBRARY, TRUST)
DEFAULT_TOOLS = ("county-collector", "countyctl")


@dataclass(frozen=True)
class Roster:
    terminals: tuple[str, ...]
    tools: tuple[str, ...]

    @property
    def identities(self) -> tuple[str, ...]:
        return self.tools + self.terminals


def make_roster(terminals: list[str], tools: list[str]) -> Roster:
    for i, name in enumerate(tools):
        _check_id(name, f"--tool {name!r}")
        if name in tools[:i]:
            raise ToolError(f"--tool {name} is given twice")
        if name in terminals:
            raise ToolError(f"tool identity {name} is also a terminal id in the roster")
    return Roster(tuple(terminals), tuple(tools))


def render_acl(county: str, roster: Roster) -> str:
    """The Mosquitto ACL file text for one county."""
    _check_id(county, "--county")
    base = f"{t.PREFIX}/{county}"
    lines = [
        f"# Mosquitto ACL for county {county}, written by `countyctl broker-acl`.",
        "# Re-run the command instead of editing; then reload Mosquitto (SIGHUP).",
        f"# {len(roster.terminals)} terminal(s) in the roster; tools: {', '.join(roster.tools)}.",
        "#",
        "# Terminals: %u is the username = certificate CN or password-file user = terminal id.",
        "# Publish only status-like topics under the own root; read only the own down topics",
        "# and the county-wide layers. No terminal may publish a schedule, library, trust or cmd.",
    ]
    lines += [f"pattern write {base}/%u/{s}" for s in UP]
    lines += [f"pattern read {base}/%u/{s}" for s in DOWN]
    lines += [f"pattern read {base}/{t.ALL}/{s}" for s in COUNTY_WIDE]
    lines += ["", "# County tools (collector, countyctl): the whole county, both ways."]
    for tool in roster.tools:
        lines += [f"user {tool}", f"topic readwrite {base}/#", ""]
    return "\n".join(lines)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def write_passwords(out: Path, roster: Roster) -> tuple[Path, list[str]]:
    """``out/passwd`` (hashed, for Mosquitto) and ``out/credentials/<id>.pass`` (the plain
    password, 0600, to install as the agent's or the tool's ``password_file``). Returns the
    passwd path and the identities that got a new password."""
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        raise ToolError("mosquitto_passwd not found (Debian: apt-get install mosquitto)")
    creds = out / "credentials"
    creds.mkdir(mode=0o700, parents=True, exist_ok=True)
    new: list[str] = []
    plain: list[str] = []
    for ident in roster.identities:
        f = creds / f"{ident}.pass"
        if f.exists():
            pw = f.read_text(encoding="utf-8").rstrip("\r\n")
            if not pw:
                raise ToolError(f"{f} is empty; delete it to get a new password")
        else:
            pw = secrets.token_urlsafe(24)
            _write_private(f, pw + "\n")
            new.append(ident)
        plain.append(f"{ident}:{pw}")
    passwd = out / "passwd"
    _write_private(passwd, "\n".join(plain) + "\n")
    r = subprocess.run([exe, "-U", str(passwd)], capture_output=True, text=True)
    if r.returncode != 0:
        passwd.unlink(missing_ok=True)
        raise ToolError(f"mosquitto_passwd -U failed: {(r.stderr or r.stdout).strip()}")
    return passwd, new


def _openssl(args: list[str], cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise ToolError("openssl not found (Debian: apt-get install openssl)")
    r = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, umask=0o077)
    if r.returncode != 0:
        raise ToolError(f"openssl {args[0]} failed in {cwd}: {r.stderr.strip()[-500:]}")


NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _private_key_problem(key: Path) -> str | None:
    mode = stat.S_IMODE(key.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{key} is readable by group or others (mode {mode:04o}); run: chmod 600 {key}"
    return None


def ensure_ca(d: Path, county: str, days: int) -> bool:
    """``d/ca.crt`` and ``d/ca.key``; made if both are missing. True when made now."""
    crt, key = d / "ca.crt", d / "ca.key"
    if crt.exists() and key.exists():
        problem = _private_key_problem(key)
        if problem:
            raise ToolError(f"refusing to sign with the county CA key: {problem}")
        return False
    if crt.exists() or key.exists():
        raise ToolError(f"{d} has only one of ca.crt and ca.key; restore the other or remove both")
    (d / "ca.cnf").write_text(
        "[req]\ndistinguished_name=dn\nx509_extensions=ext\n[dn]\n"
        "[ext]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl(["req", "-x509", *NEW_KEY, "-config", "ca.cnf", "-keyout", "ca.key", "-out",
              "ca.crt", "-days", str(days), "-subj", f"/CN=rde county {county} CA"], d)  # fmt: skip
    (d / "ca.cnf").unlink()
    crt.chmod(0o644)
    return True


def make_cert(d: Path, cn: str, days: int, server_names: list[str] | None = None) -> bool:
    """``d/<cn>.crt`` and ``d/<cn>.key`` signed by ``d/ca.*``; kept if present. True if made.
    With ``server_names`` the file is ``server.*`` for the broker (CN = first name, SANs all)."""
    name = "server" if server_names else cn
    if (d / f"{name}.crt").exists() and (d / f"{name}.key").exists():
        return False
    ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature"]
    if server_names:
        sans = [f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}"
                for n in server_names]  # fmt: skip
        ext += ["extendedKeyUsage=serverAuth", "subjectAltName=" + ",".join(sans)]
    else:
        ext += ["extendedKeyUsage=clientAuth"]
    (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(["req", "-new", *NEW_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
              "-subj", f"/CN={cn}"], d)  # fmt: skip
    _openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
              "-CAcreateserial", "-out", f"{name}.crt", "-days", str(days),
              "-extfile", f"{name}.ext"], d)  # fmt: skip
    (d / f"{name}.csr").unlink()
    (d / f"{name}.ext").unlink()
    (d / f"{name}.crt").chmod(0o644)
    return True


def make_certs(
    d: Path, county: str, roster: Roster, days: int, server_names: list[str]
) -> list[str]:
    """The county CA (if missing), a client certificate per identity, and optionally the
    broker's server certificate. Returns what was made."""
    clash = [i for i in roster.identities if i in ("ca", "server")]
    if clash:
        raise ToolError(f"identity {clash[0]!r} would overwrite the CA or server files in {d}")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    made = ["ca"] if ensure_ca(d, county, max(days, 3650)) else []
    if server_names and make_cert(d, server_names[0], days, server_names):
        made.append("server")
    made += [i for i in roster.identities if make_cert(d, i, days)]
    return made


def add_parser(sub: argparse._SubParsersAction) -> None:
    sb = sub.add_parser(
        "broker-acl",
        help="write the county broker's ACL (and password file or client certificates)",
        description="Write OUT/acl for the county Mosquitto; with --passwords also OUT/passwd and "
        "OUT/credentials/<id>.pass; with --make-certs DIR a county CA (if DIR has none) and a "
        "client certificate per terminal and tool.",
    )
    sb.add_argument("--county", required=True)
    sb.add_argument("--roster", type=Path, required=True, help="terminal ids: lines or YAML list")
    sb.add_argument("--out", type=Path, default=Path("."), help="folder for acl (and passwd)")
    sb.add_argument(
        "--tool",
        action="append",
        default=None,
        help=f"a county tool identity (repeat; default: {', '.join(DEFAULT_TOOLS)})",
    )
    sb.add_argument("--passwords", action="store_true", help="password-file variant")
    sb.add_argument("--make-certs", type=Path, default=None, metavar="DIR")
    sb.add_argument(
        "--server-name",
        action="append",
        default=[],
        help="with --make-certs: also the broker's certificate for this host name or IP (repeat)",
    )
    sb.add_argument("--days", type=int, default=825, help="certificate lifetime")


def run(args: argparse.Namespace) -> int:
    _check_id(args.county, "--county")
    if args.days < 1:
        raise ToolError("--days must be 1 or more")
    if args.server_name and args.make_certs is None:
        raise ToolError("--server-name needs --make-certs DIR")
    roster = make_roster(parse_roster(args.roster), list(args.tool or DEFAULT_TOOLS))
    args.out.mkdir(parents=True, exist_ok=True)
    acl = args.out / "acl"
    acl.write_text(render_acl(args.county, roster))
    print(f"{acl}: {len(roster.terminals)} terminal(s), tools {', '.join(roster.tools)}")
    if args.passwords:
        passwd, new = write_passwords(args.out, roster)
        print(f"{passwd}: {len(roster.identities)} identities, {len(new)} new password(s)")
    if args.make_certs is not None:
        made = make_certs(args.make_certs, args.county, roster, args.days, args.server_name)
        print(f"{args.make_certs}: made {', '.join(made) or 'nothing (all present)'}")
    return 0
