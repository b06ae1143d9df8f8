"""A simulated fleet of terminals for the county side: ``countyctl simulate`` (docs/fleet.md).

Thousands of terminals speak the documented protocol (docs/protocol.md) to a real broker and a
real collector, many per process on one event loop each, so a run measures the broker and the
collector rather than the simulator. Modules: ``outbox`` (the agent's delivery policy over an
in-memory outbox), ``terminal`` (what one terminal says and answers), ``link`` (its paho
connection), ``worker`` (one process: a selector loop over many links), ``services`` (the private
broker and the collector a run starts), ``run`` (the scenarios), ``verify`` (the database checks
and the report), ``cli`` (the subcommand).
"""
