"""The driver side of split virtqueues in host memory, as Linux's virtio_ring.c does it
(VIRTIO 1.3 section 2.7): descriptor table, available ring, used ring, buffer posting, used-ring
polling, interrupt suppression (NO_INTERRUPT, EVENT_IDX) and indirect tables.

Memory-agnostic: a ``SplitQueue`` works on any bytearray-like ``mem`` whose byte 0 is at bus
address ``base`` -- a plain bytearray in the Amaranth unit tests, a region of cocotbext-pcie's
root complex (``rc.alloc_region``) in the cocotb tests -- so every device test can reuse it.
It only touches host memory (as the CPU would); notifying the device (the doorbell) and waiting
for interrupts belong to the transport driver.

Also here: ``hostile`` builders for malformed rings (loops, out-of-range next, too-long chains)
used by the VQP-07 tests.
"""
import struct

__all__ = ["SplitQueue", "HostAllocator", "DESC_F_NEXT", "DESC_F_WRITE", "DESC_F_INDIRECT",
           "AVAIL_F_NO_INTERRUPT", "legacy_layout", "modern_layout"]

DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4
AVAIL_F_NO_INTERRUPT = 1
USED_F_NO_NOTIFY = 1


def _align(x, a):
    return (x + a - 1) // a * a


def modern_layout(base, size):
    """Descriptor, driver and device areas packed one after the other (2.7: alignments 16, 2, 4):
    ``(desc, driver, device, bytes used)``."""
    desc = base
    driver = desc + 16 * size
    device = _align(driver + 6 + 2 * size, 4)
    return desc, driver, device, device + 6 + 8 * size - base


def legacy_layout(base, size):
    """The legacy layout a PFN implies (2.7.2 legacy interfaces): ``base`` 4096-aligned, used ring
    at the next 4096 boundary after the available ring."""
    assert base % 4096 == 0
    desc = base
    driver = desc + 16 * size
    device = _align(driver + 6 + 2 * size, 4096)
    return desc, driver, device, device + 6 + 8 * size - base


class HostAllocator:
    """Bump allocator for buffers inside one host-memory region."""

    def __init__(self, mem, base, start=0):
        self.mem = mem
        self.base = base
        self.next = start

    def alloc(self, n, align=16):
        off = _align(self.next, align)
        if off + n > len(self.mem):
            raise MemoryError(f"host region of {len(self.mem)} bytes is full")
        self.next = off + n
        return self.base + off


class SplitQueue:
    """One split virtqueue, driver side.

    ``add(out=[...], inp=[...], indirect=False)`` posts a chain of device-readable buffers (bytes
    objects) then device-writable buffers (lengths), returns its head id; ``publish()`` makes
    every added chain visible (avail idx); ``used()`` returns the chains the device returned since
    the last call, as ``(id, len, [bytes of each writable buffer])``, and frees their descriptors.
    """

    def __init__(self, mem, base, size, *, layout=modern_layout, alloc=None, event_idx=False,
                 start=0, first_idx=0):
        self.mem = mem
        self.base = base
        self.size = size
        self.desc, self.driver, self.device, nbytes = layout(base + start, size)
        self.alloc = alloc or HostAllocator(mem, base, start + nbytes)
        self.event_idx = event_idx
        self.free = list(range(size))
        # free-running indices; ``first_idx`` != 0 only for a device told to start there
        # (the engine's ``qstart``, vDPA set_vq_state)
        self.avail_idx = first_idx  # as published
        self.added = first_idx      # added but maybe not published
        self.last_used = first_idx
        self.chains = {}            # head -> (descriptor ids, writable (addr, len) list)
        self.log_posted = []        # (head, readable bufs [(addr, len)], writable bufs)
        for off in range(self.desc - base, self.device - base + 6 + 8 * size):
            mem[off] = 0
        self.set_u16(self.driver + 2, first_idx)
        self.set_u16(self.device + 2, first_idx)
        #: as Linux's virtqueue_get_buf with callbacks enabled: after taking used buffers, write
        #: used_event = last_used (EVENT_IDX) so the next used buffer interrupts
        self.auto_used_event = True
        if event_idx:
            self.set_used_event(first_idx)

    # -- raw memory ------------------------------------------------------------------------------
    def rd(self, addr, n):
        return bytes(self.mem[addr - self.base:addr - self.base + n])

    def wr(self, addr, data):
        self.mem[addr - self.base:addr - self.base + len(data)] = data

    def u16(self, addr):
        return struct.unpack("<H", self.rd(addr, 2))[0]

    def set_u16(self, addr, v):
        self.wr(addr, struct.pack("<H", v & 0xFFFF))

    def write_desc(self, i, addr, length, flags, nxt, table=None):
        at = (self.desc if table is None else table) + 16 * i
        self.wr(at, struct.pack("<QIHH", addr, length, flags, nxt))

    # -- posting -----------------------------------------------------------------------------------
    def add(self, out=(), inp=(), *, indirect=False):
        """Post one chain; ``out``: bytes objects (device-readable), ``inp``: lengths
        (device-writable).  Returns the head id.  ``indirect`` puts the chain in an indirect
        table (one descriptor of the ring)."""
        bufs = []
        for data in out:
            a = self.alloc.alloc(max(1, len(data)))
            self.wr(a, data)
            bufs.append((a, len(data), 0))
        for n in inp:
            a = self.alloc.alloc(max(1, n))
            self.wr(a, bytes(n))
            bufs.append((a, n, DESC_F_WRITE))
        if not bufs:
            raise ValueError("a chain needs at least one buffer")
        need = 1 if indirect else len(bufs)
        if need > len(self.free):
            raise RuntimeError(f"queue full: {len(self.free)} free descriptors, {need} needed")
        ids = [self.free.pop(0) for _ in range(need)]
        if indirect:
            table = self.alloc.alloc(16 * len(bufs))
            for j, (a, n, f) in enumerate(bufs):
                last = j == len(bufs) - 1
                self.write_desc(j, a, n, f | (0 if last else DESC_F_NEXT), 0 if last else j + 1,
                                table=table)
            self.write_desc(ids[0], table, 16 * len(bufs), DESC_F_INDIRECT, 0)
        else:
            for j, (a, n, f) in enumerate(bufs):
                last = j == len(bufs) - 1
                self.write_desc(ids[j], a, n, f | (0 if last else DESC_F_NEXT),
                                0 if last else ids[j + 1])
        head = ids[0]
        self.post_head(head)
        self.chains[head] = (ids, [(a, n) for a, n, f in bufs if f & DESC_F_WRITE])
        self.log_posted.append((head, [(a, n) for a, n, f in bufs if not f & DESC_F_WRITE],
                                [(a, n) for a, n, f in bufs if f & DESC_F_WRITE]))
        return head

    def post_head(self, head):
        """Put ``head`` in the next available slot (not yet published)."""
        self.set_u16(self.driver + 4 + 2 * (self.added % self.size), head)
        self.added += 1

    def publish(self):
        """Make every added chain visible: write avail idx.  Returns True when the device must
        be notified (always without EVENT_IDX unless it set NO_NOTIFY; with EVENT_IDX when
        avail_event is in [old, new): vring_need_event)."""
        old, new = self.avail_idx, self.added & 0xFFFF
        self.avail_idx = new
        self.set_u16(self.driver + 2, new)
        if self.event_idx:
            ev = self.avail_event
            return ((new - ev - 1) & 0xFFFF) < ((new - old) & 0xFFFF)
        return not self.u16(self.device) & USED_F_NO_NOTIFY

    # -- used ring -------------------------------------------------------------------------------
    @property
    def used_idx(self):
        return self.u16(self.device + 2)

    @property
    def avail_event(self):
        return self.u16(self.device + 4 + 8 * self.size)

    def used(self):
        out = []
        while self.last_used != self.used_idx:
            slot = self.last_used % self.size
            uid, ulen = struct.unpack("<II", self.rd(self.device + 4 + 8 * slot, 8))
            if uid not in self.chains:
                raise AssertionError(f"used ring slot {slot}: id {uid} is not an outstanding chain")
            ids, wbufs = self.chains.pop(uid)
            self.free.extend(ids)
            datas = [self.rd(a, n) for a, n in wbufs]
            out.append((uid, ulen, datas))
            self.last_used = (self.last_used + 1) & 0xFFFF
        if out and self.event_idx and self.auto_used_event \
                and not self.u16(self.driver) & AVAIL_F_NO_INTERRUPT:
            self.set_used_event(self.last_used)
        return out

    # -- interrupt suppression (2.7.7, 2.7.10) ----------------------------------------------------
    def no_interrupt(self, on):
        self.set_u16(self.driver, AVAIL_F_NO_INTERRUPT if on else 0)

    def set_used_event(self, v):
        self.set_u16(self.driver + 4 + 2 * self.size, v)

    # -- hostile rings (VQP-07) ------------------------------------------------------------------
    def add_raw(self, descs, head=None):
        """Write raw descriptors ``[(index, addr, len, flags, next)]`` and post ``head`` (default:
        the first one).  The descriptors are not tracked: the device must not return them."""
        for i, a, n, f, nx in descs:
            self.write_desc(i, a, n, f, nx)
        self.post_head(descs[0][0] if head is None else head)


class DriverVirtqueue:
    """A split virtqueue of a ``VirtioPciDriver`` (tb/host/virtio_driver.py) with its rings in the
    root complex's host memory: what Linux's vring_create_virtqueue, virtqueue_add_*,
    virtqueue_kick and virtqueue_get_buf do, reusable by the test of any device.

    ``await DriverVirtqueue.create(drv, rc, index, size=..., vector=...)`` allocates a host region
    (``rc.alloc_region``), lays the rings out in it (``modern_layout``) and programs the queue
    (``drv.setup_vq``; enable it with ``drv.enable_vq`` or ``drv.init``-style before DRIVER_OK).
    ``irq_count``: a callable returning how many interrupts this queue's vector delivered so far
    (MSI-X: ``MsixHost.delivered``), for ``wait_used(irq=True)``.
    """

    def __init__(self, drv, vq, sq, irq_count=None):
        self.drv, self.vq, self.sq, self.irq_count = drv, vq, sq, irq_count
        self.kicks = 0

    @classmethod
    async def create(cls, drv, rc, index, *, size, vector=0xFFFF, region=1 << 16, event_idx=None,
                     irq_count=None, first_idx=0):
        base, mem = rc.alloc_region(region)
        ev = drv.negotiated(29) if event_idx is None else event_idx
        sq = SplitQueue(mem, base, size, event_idx=ev, first_idx=first_idx)
        vq = await drv.setup_vq(index, size=size, desc=sq.desc, driver=sq.driver,
                                device=sq.device, vector=vector)
        return cls(drv, vq, sq, irq_count)

    def add_inbuf(self, n, count=1):
        """virtqueue_add_inbuf: ``count`` device-writable buffers of ``n`` bytes (one per chain)."""
        return [self.sq.add(inp=[n]) for _ in range(count)]

    async def kick(self):
        """virtqueue_kick: publish avail idx, notify when the device asked for it."""
        if self.sq.publish():
            self.kicks += 1
            await self.drv.kick(self.vq, avail_idx=self.sq.avail_idx)

    async def wait_used(self, count, *, tb, irq=False, limit_cycles=200000, step=50):
        """Poll the used ring (host memory: no TLPs) until ``count`` chains came back; with
        ``irq`` also wait for an interrupt after the last one (irq_count grew)."""
        got = []
        seen_irq = self.irq_count() if irq else 0
        waited = 0
        while len(got) < count or (irq and self.irq_count() == seen_irq):
            got.extend(self.sq.used())
            if len(got) >= count and (not irq or self.irq_count() > seen_irq):
                break
            if waited > limit_cycles:
                raise AssertionError(f"queue {self.vq.index}: {len(got)} of {count} buffers used "
                                     f"after {waited} cycles")
            await tb.cycles(step)
            waited += step
        return got
