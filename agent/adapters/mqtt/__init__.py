"""The MQTT link to the county broker.

Adapter modules here: ``config`` (the ``mqtt:`` section), ``conn`` (paho client set-up),
``commands`` (the ``cmd`` topic), ``bridge`` (what the link asks of the agent, on the core
thread), ``link`` (the paho adapter and its worker thread), ``alarm`` (the outbox backlog alarm).
The pure parts live in the domain: ``agent.domain.topics``, ``protocol``, ``backoff``, ``outbox``.
"""
