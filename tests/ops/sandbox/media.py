"""Small real media for the sandbox check: a WAV tone and an H.264/MP4 clip made by libvlc."""

from __future__ import annotations

import os
import struct
import sys
import time
import zlib

sys.path.insert(0, os.environ.get("AGENT_SOURCE", "/work/main"))

import vlc  # noqa: E402

from agent.testing.media import write_wav  # noqa: E402


def png(path: str, width: int = 160, height: int = 120) -> None:
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 2, 128))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header))
        f.write(chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def main(folder: str) -> None:
    write_wav(os.path.join(folder, "tone.wav"), 2.0, tone_hz=440)
    still = os.path.join(folder, "still.png")
    png(still)
    clip = os.path.join(folder, "clip.mp4")
    sout = (
        ":sout=#transcode{vcodec=h264,venc=x264{preset=ultrafast},fps=25,acodec=none}"
        f":std{{access=file,mux=mp4,dst={clip}}}"
    )
    inst = vlc.Instance("--quiet")
    player = inst.media_player_new()
    player.set_media(inst.media_new(still, ":image-duration=3", sout))
    player.play()
    start = time.monotonic()
    while time.monotonic() - start < 30 and player.get_state() not in (
        vlc.State.Ended,
        vlc.State.Error,
    ):
        time.sleep(0.1)
    player.stop()
    if not os.path.getsize(clip):
        sys.exit("could not make the H.264 clip")


if __name__ == "__main__":
    main(sys.argv[1])
