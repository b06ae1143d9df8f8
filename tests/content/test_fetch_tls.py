"""TLS with the county's CA: a private CA made with the openssl CLI, nginx with ssl on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.adapters.http_fetch import FetchError, fetch_file
from agent.testing.nginx import NginxServer, sha256_of, write_random


def test_https_with_the_ca_file_works_and_without_it_is_tls(
    tls_nginx: tuple[NginxServer, Path], tmp_path: Path
) -> None:
    server, ca = tls_nginx
    size = 1024 * 1024
    sha = write_random(server.root / "f.bin", size)
    dest = tmp_path / "content" / "f.bin"
    with pytest.raises(FetchError) as err:
        fetch_file([server.url("f.bin")], dest, size, sha, part_dir=tmp_path / "part")
    assert err.value.reason == "tls"
    assert not dest.exists()
    result = fetch_file(
        [server.url("f.bin")], dest, size, sha, part_dir=tmp_path / "part", ca_file=ca
    )
    assert result.mirror.startswith("https://")
    assert sha256_of(dest) == sha
