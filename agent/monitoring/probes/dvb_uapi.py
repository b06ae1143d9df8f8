"""The Linux DVB frontend API (include/uapi/linux/dvb/frontend.h) as ctypes: constants, struct
layouts and ioctl numbers, for the dvb probe.

Struct layouts are declared with ctypes and sized by ctypes, because ``struct dtv_properties`` is
16 bytes on 64-bit and 8 on 32-bit ARM and the ioctl number encodes that size.
"""

from __future__ import annotations

import ctypes
from types import SimpleNamespace
from typing import Any

# -- constants ---------------------------------------------------------------------------------

FE_HAS_SIGNAL = 0x01
FE_HAS_CARRIER = 0x02
FE_HAS_VITERBI = 0x04
FE_HAS_SYNC = 0x08
FE_HAS_LOCK = 0x10
FE_TIMEDOUT = 0x20
FE_REINIT = 0x40

FE_SCALE_NOT_AVAILABLE = 0
FE_SCALE_DECIBEL = 1
FE_SCALE_RELATIVE = 2
FE_SCALE_COUNTER = 3

DTV_STAT_SIGNAL_STRENGTH = 62
DTV_STAT_CNR = 63
DTV_STAT_PRE_ERROR_BIT_COUNT = 64
DTV_STAT_PRE_TOTAL_BIT_COUNT = 65
DTV_STAT_POST_ERROR_BIT_COUNT = 66
DTV_STAT_POST_TOTAL_BIT_COUNT = 67
DTV_STAT_ERROR_BLOCK_COUNT = 68
DTV_STAT_TOTAL_BLOCK_COUNT = 69
STAT_COMMANDS = tuple(range(DTV_STAT_SIGNAL_STRENGTH, DTV_STAT_TOTAL_BLOCK_COUNT + 1))
MAX_DTV_STATS = 4

_IOC_READ = 2


def _ior(kind: str, nr: int, size: int) -> int:
    return (_IOC_READ << 30) | (size << 16) | (ord(kind) << 8) | nr


# -- struct layouts ------------------------------------------------------------------------


def make_structs(pointer: Any = ctypes.c_void_p) -> SimpleNamespace:
    """Declare the DVBv5 property structs; ``pointer`` lets tests lay them out as 32-bit ARM does.

    ``dtv_stats``, ``dtv_fe_stats`` and ``dtv_property`` are ``__attribute__((packed))`` in the
    kernel header; the anonymous ``buffer`` struct inside the union is not.
    """

    class DtvStats(ctypes.Structure):
        class _Value(ctypes.Union):
            _pack_ = 1
            _fields_ = [("uvalue", ctypes.c_uint64), ("svalue", ctypes.c_int64)]

        _pack_ = 1
        _anonymous_ = ("v",)
        _fields_ = [("scale", ctypes.c_uint8), ("v", _Value)]

    class DtvFeStats(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("len", ctypes.c_uint8), ("stat", DtvStats * MAX_DTV_STATS)]

    class Buffer(ctypes.Structure):
        _fields_ = [
            ("data", ctypes.c_uint8 * 32),
            ("len", ctypes.c_uint32),
            ("reserved1", ctypes.c_uint32 * 3),
            ("reserved2", pointer),
        ]

    class U(ctypes.Union):
        _fields_ = [("data", ctypes.c_uint32), ("st", DtvFeStats), ("buffer", Buffer)]

    class DtvProperty(ctypes.Structure):
        _pack_ = 1
        _fields_ = [
            ("cmd", ctypes.c_uint32),
            ("reserved", ctypes.c_uint32 * 3),
            ("u", U),
            ("result", ctypes.c_int),
        ]

    props_pointer = ctypes.POINTER(DtvProperty) if pointer is ctypes.c_void_p else pointer

    class DtvProperties(ctypes.Structure):
        _fields_ = [("num", ctypes.c_uint32), ("props", props_pointer)]

    return SimpleNamespace(
        DtvStats=DtvStats,
        DtvFeStats=DtvFeStats,
        DtvProperty=DtvProperty,
        DtvProperties=DtvProperties,
        FE_GET_PROPERTY=_ior("o", 83, ctypes.sizeof(DtvProperties)),
    )


NATIVE = make_structs()
DtvProperty = NATIVE.DtvProperty
DtvProperties = NATIVE.DtvProperties
FE_GET_PROPERTY: int = NATIVE.FE_GET_PROPERTY
FE_READ_STATUS = _ior("o", 69, ctypes.sizeof(ctypes.c_uint32))  # fe_status_t is an enum
FE_READ_BER = _ior("o", 70, ctypes.sizeof(ctypes.c_uint32))
FE_READ_SIGNAL_STRENGTH = _ior("o", 71, ctypes.sizeof(ctypes.c_uint16))
FE_READ_SNR = _ior("o", 72, ctypes.sizeof(ctypes.c_uint16))
FE_READ_UNCORRECTED_BLOCKS = _ior("o", 73, ctypes.sizeof(ctypes.c_uint32))
