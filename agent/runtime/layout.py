"""Where the agent keeps its files, derived from the config: shared by the full config model and
stationctl's quick config reader, so both always agree on the store and socket paths."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo


class StationLayout:
    """Mixin for config classes that have ``state_dir``, ``control_socket`` and ``timezone``."""

    state_dir: Path
    control_socket: Path | None
    timezone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "agent.db"

    @property
    def socket_path(self) -> Path:
        return self.control_socket or (self.state_dir / "control.sock")
