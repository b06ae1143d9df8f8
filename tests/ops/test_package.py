"""scripts/package: the .deb a technician installs. Built once per module into a temporary
folder, then read back with the Debian tools (dpkg-deb -I/-c/-x, lintian where installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run(
        [str(ROOT / "scripts" / "package"), "--out", str(out), "--no-lintian"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    path = out / f"station-agent_{VERSION}_all.deb"
    assert path.exists(), f"no {path.name} in {sorted(p.name for p in out.iterdir())}"
    return path


def field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def control_file(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-I", str(deb), name], capture_output=True, text=True, check=True
    ).stdout


def listing(deb: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode string, owner/group) from dpkg-deb -c."""
    out = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    files = {}
    for line in out.splitlines():
        parts = line.split(None, 5)
        path = parts[5].split(" -> ")[0].removeprefix(".")
        files[path.rstrip("/") or "/"] = (parts[0], parts[1])
    return files


def test_control_fields(deb: Path) -> None:
    assert field(deb, "Package") == "station-agent"
    assert field(deb, "Version") == VERSION
    assert field(deb, "Architecture") == "all"
    depends = [d.strip() for d in field(deb, "Depends").split(",")]
    for want in ("python3 (>= 3.11)", "python3-psutil", "python3-yaml", "libvlc5"):
        assert want in depends, depends
    assert "vlc-plugin-base" in depends
    assert any(d.startswith("python3-urllib3") for d in depends), depends
    # Vendored, never a Debian dependency: Debian 12's are too old or missing.
    assert not any("paho" in d or "python3-vlc" in d for d in depends), depends
    assert int(field(deb, "Installed-Size")) > 500


def test_config_is_the_only_conffile_and_points_at_the_state_tree(deb: Path, tmp_path) -> None:
    assert control_file(deb, "conffiles").split() == ["/etc/station-agent/agent.yaml"]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    text = (tmp_path / "etc/station-agent/agent.yaml").read_text()
    assert re.search(r"^state_dir: /var/lib/station-agent$", text, re.M)
    assert re.search(r"^content_dir: /var/lib/station-agent/content$", text, re.M)


def test_file_list(deb: Path) -> None:
    files = listing(deb)
    for cmd in ("station-agent", "stationctl", "countyctl"):
        mode, owner = files[f"/usr/bin/{cmd}"]
        assert mode == "-rwxr-xr-x" and owner == "root/root", (cmd, mode, owner)
    for path in (
        "/lib/systemd/system/station-agent.service",
        "/lib/systemd/system/station-agent-retry.timer",
        "/usr/lib/sysusers.d/station-agent.conf",
        "/usr/lib/tmpfiles.d/station-agent.conf",
        "/usr/lib/station-agent/agent/cli/daemon.py",
        "/usr/lib/station-agent/agent/locale/zh_CN/LC_MESSAGES/stationctl.mo",
        "/usr/lib/station-agent/vendor/paho/mqtt/client.py",
        "/usr/lib/station-agent/vendor/vlc.py",
        "/usr/share/doc/station-agent/copyright",
        "/usr/share/doc/station-agent/changelog.gz",
    ):
        assert path in files, path
    assert all(owner == "root/root" for _mode, owner in files.values())
    assert not [p for p in files if p.endswith(".pyc") or "__pycache__" in p]
    assert not [p for p in files if p.startswith(("/var/", "/opt/", "/usr/local/"))]


def test_unit_runs_the_packaged_command(deb: Path, tmp_path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    unit = (tmp_path / "lib/systemd/system/station-agent.service").read_text()
    assert re.search(
        r"^ExecStart=/usr/bin/station-agent -c /etc/station-agent/agent.yaml$", unit, re.M
    )
    assert "/opt/station-agent" not in "".join(
        line for line in unit.splitlines(keepends=True) if not line.startswith("#")
    )


def test_vendored_libraries_win_over_anything_installed(deb: Path, tmp_path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    lib = tmp_path / "usr/lib/station-agent"
    code = (
        "import sys; sys.path[0:0] = [sys.argv[1], sys.argv[1] + '/vendor'];"
        "import paho.mqtt, vlc, agent.cli.daemon, agent.cli.stationctl;"
        "print(paho.mqtt.__version__, paho.mqtt.__file__, vlc.__file__)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(lib)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    version, paho_file, vlc_file = r.stdout.split()
    assert version.startswith("2."), version
    assert paho_file.startswith(str(lib / "vendor")) and vlc_file.startswith(str(lib / "vendor"))


def test_maintainer_scripts(deb: Path) -> None:
    postinst = control_file(deb, "postinst")
    postrm = control_file(deb, "postrm")
    prerm = control_file(deb, "prerm")
    for name, text in (("postinst", postinst), ("postrm", postrm), ("prerm", prerm)):
        r = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True)
        assert r.returncode == 0, f"{name}: {r.stderr}"
        assert re.search(r"^set -e$", text, re.M), name
    assert "systemd-sysusers station-agent.conf" in postinst
    assert "systemd-tmpfiles --create station-agent.conf" in postinst
    assert "deb-systemd-helper enable station-agent.service" in postinst
    # No systemd in a chroot or image build: starting is guarded, enabling is not.
    assert "[ -d /run/systemd/system ]" in postinst
    purge = postrm[postrm.index("purge)") :]
    assert "rm -rf /var/lib/station-agent" in purge
    remove = postrm[postrm.index("remove)") : postrm.index("purge)")]
    assert "/var/lib/station-agent" not in remove


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian not installed")
def test_lintian_reports_no_errors(deb: Path) -> None:
    r = subprocess.run(
        ["lintian", "--fail-on", "error", "--tag-display-limit", "0", str(deb)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    assert not errors and r.returncode == 0, r.stdout + r.stderr
