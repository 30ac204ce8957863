"""Split-virtqueue wire formats and the engine's device-function streams (VIRTIO 1.3 section 2.7).

Ring structures (2.7.5 descriptor table, 2.7.6 available ring, 2.7.8 used ring), little-endian
as a modern driver writes them (a legacy driver on a little-endian host writes the same bytes):

* descriptor: ``addr`` (le64), ``len`` (le32), ``flags`` (le16), ``next`` (le16): 16 bytes;
* available ring at the driver area: ``flags`` (le16), ``idx`` (le16), ``ring[size]`` (le16),
  ``used_event`` (le16, with VIRTIO_F_EVENT_IDX);
* used ring at the device area: ``flags`` (le16), ``idx`` (le16), ``ring[size]`` of
  ``{id: le32, len: le32}``, ``avail_event`` (le16, with VIRTIO_F_EVENT_IDX).

The device function sees a chain as segments (one per buffer, in chain order):

``seg`` (engine -> device) ``Segment``: ``queue``, ``id`` (the chain's head, as it will be
    returned in the used ring), ``write`` (device-writable), ``len`` bytes, ``first`` (first
    buffer of a chain), ``last`` (last buffer of the chain).  Device-readable buffers come first.
``rd`` (engine -> device) ``ReadBeat``: for a readable segment, ceil(len / (W/8)) beats, the
    byte at the buffer's start in bits 7:0 of the first beat, ``last`` on the final one.
``wr`` (device -> engine) ``WriteBeat``: for a writable segment, the bytes the device puts in
    it: ``bytes`` (0..W/8) valid bytes from bit 0 in each beat, ``last`` ends the segment.  Bytes
    past the buffer's length are dropped; used ``len`` is the number of bytes written.
"""
from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.utils import bits_for

__all__ = ["DescFlags", "Descriptor", "Segment", "ReadBeat", "WriteBeat", "AVAIL_F_NO_INTERRUPT",
           "DESC_BYTES", "USED_ELEM_BYTES"]

DESC_BYTES = 16
USED_ELEM_BYTES = 8
AVAIL_F_NO_INTERRUPT = 1        # 2.7.7: bit 0 of the available ring's flags


class DescFlags(data.Struct):
    """``virtq_desc.flags`` (2.7.5)."""
    next: 1
    write: 1
    indirect: 1
    _rsvd: 13


class Descriptor(data.Struct):
    """One 16-byte descriptor, as its little-endian bytes read from bit 0."""
    addr: 64
    len: 32
    flags: DescFlags
    next: 16


class Segment(data.Struct):
    queue: 16
    id: 16
    write: 1
    len: 32
    first: 1
    last: 1


def ReadBeat(width):
    return data.StructLayout({"data": unsigned(width), "last": 1})


def WriteBeat(width):
    return data.StructLayout({"data": unsigned(width), "bytes": bits_for(width // 8), "last": 1})
