"""Fixtures for the content pipeline tests: a private nginx (``agent.testing.nginx``) over a
temp folder, plain or with TLS from a throwaway CA."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.testing.nginx import NginxServer


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxServer]:
    server = NginxServer(tmp_path / "nginx").start()
    try:
        yield server
    finally:
        server.stop()


def make_ca_and_cert(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the ``openssl`` CLI.

    Returns (ca_cert, server_cert, server_key).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = workdir / "ca.key", workdir / "ca.crt"
    key, csr, crt = workdir / "server.key", workdir / "server.csr", workdir / "server.crt"
    ext = workdir / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(ca_crt), "-days", "2", "-subj", "/CN=Test County CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca_crt, crt, key


@pytest.fixture
def tls_nginx(tmp_path: Path) -> Iterator[tuple[NginxServer, Path]]:
    """nginx serving https on loopback with a certificate from a private CA: (server, ca_file)."""
    ca, crt, key = make_ca_and_cert(tmp_path / "pki")
    server = NginxServer(tmp_path / "nginx-tls", tls=(crt, key)).start()
    try:
        yield server, ca
    finally:
        server.stop()
