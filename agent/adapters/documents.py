"""The bounded YAML/JSON reader, under the name config and probe code import it by.

The reader lives in ``agent.runtime.documents``: the config loader (runtime), the schedule files
(an adapter), the probes' config (monitoring) and the county tools (cli) all read with it, so it
sits in the lowest layer that may import PyYAML. New code imports it from there.
"""

from __future__ import annotations

from agent.runtime.documents import PLAIN_TAGS, YAML_LOADER, parse_document, parse_yaml

__all__ = ["PLAIN_TAGS", "YAML_LOADER", "parse_document", "parse_yaml"]
