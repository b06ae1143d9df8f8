"""Station agent: plays scheduled courses on a village terminal and reports to the county."""

from agent.domain.release import RELEASE_DATE  # noqa: F401 - part of the package's face

__version__ = "0.1.0"
