"""TLS with client certificates, username/password with an ACL, and the refusal to start with a
private key (or password file) that other users can read."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
import yaml

from agent.adapters.mqtt.config import MqttConfig, TlsConfig
from agent.cli.county.broker import BrokerTls, PrivateBroker
from agent.cli.county.client import CountyClient
from agent.domain import topics as t
from tests.helpers import ROOT, write_config
from tests.mqtt.conftest import COUNTY, TERMINAL, fast_mqtt, wait_until


def state_watcher(m: MqttConfig, name: str) -> CountyClient:
    cc = CountyClient(m, name)
    cc.connect()
    cc.subscribe([t.topic(COUNTY, TERMINAL, t.STATE)])
    return cc


def saw_online(cc: CountyClient) -> bool:
    while not cc.messages.empty():
        if b'"state":"online"' in cc.messages.get().payload:
            return True
    return False


@pytest.mark.mosquitto_only("TLS files and Mosquitto's log")
def test_tls_with_client_certificates(tmp_path, pki, agents):
    tls = BrokerTls(pki["ca_crt"], pki["server_crt"], pki["server_key"], require_certificate=True)
    broker = PrivateBroker(tmp_path / "broker", tls=tls).start()
    try:
        mqtt = fast_mqtt(broker)
        mqtt["tls"] = {
            "ca_file": str(pki["ca_crt"]),
            "cert_file": str(pki[f"{TERMINAL}_crt"]),
            "key_file": str(pki[f"{TERMINAL}_key"]),
        }
        agent = agents(write_config(tmp_path, mqtt=mqtt)).start()
        spy_tls = TlsConfig(pki["ca_crt"], pki["spy_crt"], pki["spy_key"])
        cc = state_watcher(MqttConfig(host=broker.host, port=broker.port, tls=spy_tls), "spy")
        try:
            wait_until(lambda: saw_online(cc), 15, "online over TLS")
        finally:
            cc.close()
        assert agent.stop() == 0
        assert f"as {TERMINAL}" in broker.log_text() or TERMINAL in broker.log_text()
    finally:
        broker.stop()


@pytest.mark.mosquitto_only("Mosquitto password and ACL files")
def test_password_and_acl(tmp_path, agents):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), TERMINAL, "s3cret-t"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "county", "s3cret-c"], check=True)
    acl = tmp_path / "acl"
    acl.write_text(
        "user county\ntopic readwrite rde/#\n\n"
        f"pattern readwrite rde/v1/{COUNTY}/%u/#\npattern read rde/v1/{COUNTY}/all/schedule\n"
    )
    broker = PrivateBroker(tmp_path / "broker", password_file=pw, acl_file=acl).start()
    try:
        secret = tmp_path / "agent.pass"
        secret.write_text("s3cret-t\n")
        secret.chmod(0o600)
        cfg = write_config(tmp_path, mqtt=fast_mqtt(broker, password_file=str(secret)))
        cpass = tmp_path / "county.pass"
        cpass.write_text("s3cret-c")
        cpass.chmod(0o600)
        county = MqttConfig(
            host=broker.host, port=broker.port, username="county", password_file=cpass
        )
        cc = state_watcher(county, "county-watch")
        agent = agents(cfg).start()
        try:
            wait_until(lambda: saw_online(cc), 15, "online with username/password")
        finally:
            cc.close()
        assert agent.stop() == 0
        # a wrong password: refused, retried with back-off, never a crash
        secret.write_text("wrong\n")
        t0 = time.monotonic()
        agent.start("--duration", "3")
        agent.proc.wait(15)
        assert agent.proc.returncode == 0
        assert time.monotonic() - t0 < 14
        assert "refused the connection" in agent.log_text()
    finally:
        broker.stop()


def test_refuses_to_start_with_a_key_readable_by_others(tmp_path, pki):
    key = tmp_path / "client.key"
    shutil.copy(pki[f"{TERMINAL}_key"], key)
    key.chmod(0o644)
    cfg = write_config(
        tmp_path,
        mqtt={
            "host": "127.0.0.1",
            "port": 1,
            "tls": {"cert_file": str(pki[f"{TERMINAL}_crt"]), "key_file": str(key)},
        },
    )
    res = subprocess.run(
        [sys.executable, "-m", "agent", "-c", str(cfg), "--duration", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 2
    assert "mqtt.tls.key_file" in res.stderr and "chmod o-rwx" in res.stderr
    key.chmod(0o600)
    pw = tmp_path / "pw"
    pw.write_text("x")
    pw.chmod(0o604)
    doc = yaml.safe_load(cfg.read_text())
    doc["mqtt"] = {"host": "127.0.0.1", "password_file": str(pw)}
    cfg.write_text(yaml.safe_dump(doc))
    res = subprocess.run(
        [sys.executable, "-m", "agent", "-c", str(cfg), "--duration", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 2 and "mqtt.password_file" in res.stderr
