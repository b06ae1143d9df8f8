"""A private nginx on a free loopback port, for tests, benches and the demo.

Why nginx and not a Python server: Range, 416 and keep-alive behave as on the county's servers,
so the fetcher is tested (and the demo's terminal fetches) against the real thing.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

NGINX = "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user_line() -> str:
    """As root nginx would drop its worker to ``nobody``, who cannot read a private tmp folder."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


class NginxServer:
    """nginx in the foreground (``daemon off``) with its own prefix, conf, pid and logs.

    ``tls=(cert, key)`` makes it listen with ssl instead of plain http.
    """

    def __init__(
        self, workdir: Path, root: Path | None = None, *, tls: tuple[Path, Path] | None = None
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root = Path(root) if root is not None else self.workdir / "www"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def body_bytes_sent(self) -> int:
        """Sum of the body bytes nginx wrote, from its access log (one number per line)."""
        if not self.access_log.exists():
            return 0
        return sum(
            int(line.split()[0]) for line in self.access_log.read_text().splitlines() if line
        )

    def _conf(self) -> str:
        w = self.workdir
        if self.tls:
            listen = f"listen 127.0.0.1:{self.port} ssl;"
            listen += (
                f"\n    ssl_certificate {self.tls[0]};\n    ssl_certificate_key {self.tls[1]};"
            )
        else:
            listen = f"listen 127.0.0.1:{self.port};"
        return f"""{_user_line()}
daemon off;
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections 256; }}
http {{
  log_format bytes '$body_bytes_sent $status "$http_range"';
  access_log {w}/access.log bytes;
  client_body_temp_path {w}/tmp_body;
  proxy_temp_path {w}/tmp_proxy;
  fastcgi_temp_path {w}/tmp_fastcgi;
  uwsgi_temp_path {w}/tmp_uwsgi;
  scgi_temp_path {w}/tmp_scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_timeout 30;
  server {{
    {listen}
    root {self.root};
  }}
}}
"""

    def start(self) -> NginxServer:
        last = ""
        for _ in range(5):
            self.port = free_port()
            conf = self.workdir / "nginx.conf"
            conf.write_text(self._conf())
            err = self.workdir / "stderr.log"
            self._proc = subprocess.Popen(
                [
                    NGINX,
                    "-p",
                    str(self.workdir),
                    "-c",
                    str(conf),
                    "-e",
                    str(self.workdir / "error.log"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=err.open("wb"),
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    return self
                except OSError:
                    time.sleep(0.02)
            self.stop()
            last = err.read_text(errors="replace") + (self.workdir / "error.log").read_text(
                errors="replace"
            )
        raise RuntimeError(f"nginx did not start in {self.workdir}: {last[-2000:]}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def write_random(path: Path, size: int, seed_chunk: int = 1024 * 1024) -> str:
    """Write ``size`` random bytes to ``path`` in chunks (never a whole big file in memory);
    returns the sha256 hex digest."""
    h = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        left = size
        while left:
            data = os.urandom(min(seed_chunk, left))
            f.write(data)
            h.update(data)
            left -= len(data)
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(1024 * 1024):
            h.update(data)
    return h.hexdigest()
