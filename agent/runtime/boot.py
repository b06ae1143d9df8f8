"""The id of this boot of the kernel, which several layers stamp and none of them owns.

Records carry it, the store refuses to move a second corrupt database aside within one boot,
and process restarts are counted per boot.
"""

from __future__ import annotations

import os
from pathlib import Path


def boot_id(proc_root: Path = Path("/proc")) -> str:
    """The kernel's id of this boot; a per-process stand-in when /proc cannot tell."""
    try:
        return (proc_root / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"unknown-{os.getpid()}"
