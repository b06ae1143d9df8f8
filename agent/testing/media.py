"""Small real media files made on the spot: a silent or tone WAV of a given length.

Used by the demo, the tests, the benchmarks and ``stationctl check`` (which plays a one-second
probe through VLC). WAV needs no codec beyond VLC's base plugins and is a few KB per second.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path


def write_wav(path: Path, seconds: float, rate: int = 8000, tone_hz: float = 0.0) -> Path:
    """Write an 8-bit mono WAV of ``seconds`` (8 KB a second at the default rate)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(rate * seconds)
    if tone_hz:
        data = bytes(
            int(128 + 60 * math.sin(2 * math.pi * tone_hz * i / rate)) for i in range(frames)
        )
    else:
        data = bytes([128]) * frames
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def write_truncated_wav(
    path: Path, claimed_seconds: float, actual_seconds: float, rate: int = 8000
) -> Path:
    """A WAV whose header promises more data than the file holds (a cut-off download)."""
    full = Path(str(path) + ".full")
    write_wav(full, claimed_seconds, rate)
    data = full.read_bytes()
    full.unlink()
    Path(path).write_bytes(data[: 44 + int(rate * actual_seconds)])
    return Path(path)


def write_garbage(path: Path, size: int = 50_000, seed: int = 7) -> Path:
    """Bytes that no demuxer recognises (a corrupt file)."""
    out = bytearray()
    x = seed
    while len(out) < size:
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        out += struct.pack("<I", x)
    Path(path).write_bytes(bytes(out[:size]))
    return Path(path)
