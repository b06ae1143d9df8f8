"""The MQTT link to the county broker (issue 3).

Modules, from pure to I/O:
- ``config``    the ``mqtt:`` config section.
- ``topics``    topic names under ``rde/v1/{county}/{terminal}/`` (agent and county tools share it).
- ``protocol``  payload builders and validators: the code behind ``docs/protocol.md``.
- ``backoff``   exponential reconnect delays with full jitter (pure, injected randomness).
- ``outbox``    the delivery policy: order, inflight window, what PUBACK or ``record/ack`` confirms.
- ``commands``  the ``cmd`` topic: validation, dispatch, executed-id dedupe on disk.
- ``bridge``    what the link asks of the agent (runs on the core thread) and an in-memory stand-in.
- ``link``      the paho adapter and its worker thread.
"""
