"""The county side: a technician's tool (``scripts/countyctl``) and a durable record collector.

They speak the protocol in ``agent.domain.protocol`` / ``agent.domain.topics`` and reuse the agent's
own schedule validation, so the county can never push what a terminal would reject as malformed.
"""
