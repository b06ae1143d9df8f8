"""The trust tests reuse the MQTT tests' private Mosquitto, spy and agent-process fixtures."""

from tests.mqtt.conftest import agents, broker, spy  # noqa: F401
