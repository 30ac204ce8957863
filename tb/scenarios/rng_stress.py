"""Randomised stress of the virtio-rng device (``make stress STRESS_ARGS="--params
examples/virtio-rng.json"``): the driver keeps the request queue busy with random chains
(1..3 writable buffers of 1..600 bytes, sometimes a readable buffer first, sometimes through an
indirect table), toggles NO_INTERRUPT, and at random resets the queue (RING_RESET) or the whole
device with buffers outstanding, then starts again on fresh rings.

Checked for every returned chain: it was outstanding, used len = its writable bytes, the bytes
are the entropy source's stream (models/rng_model.py) continuing from the previous chain, or,
after a reset (the aborted chains consumed an unknown amount), found further on in it.  Checked
after every reset: the old rings are never written again.  DEVICE_NEEDS_RESET must never be set.
"""
import random

from tb.host.virtio_driver import F, Status
from tb.host.virtqueue_driver import SplitQueue
from virtio_pci.devices.entropy import SEEDS, xorshift64

__all__ = ["EntropyStream", "run_rng_stress"]


class EntropyStream:
    """The source's words, generated on demand, with an index to find one."""

    def __init__(self, width):
        self.bpb = width // 8
        self.lanes = list(SEEDS[:width // 64])
        self.words = []
        self.where = {}

    def word(self, i):
        while len(self.words) <= i:
            w = b"".join(x.to_bytes(8, "little") for x in self.lanes)
            self.where.setdefault(w, len(self.words))
            self.words.append(w)
            self.lanes = [xorshift64(x) for x in self.lanes]
        return self.words[i]

    def find(self, first, start, horizon=200000):
        self.word(start + horizon)
        i = self.where.get(first)
        return i if i is not None and i >= start else None


def _expected(stream, cursor, sizes):
    out = []
    for n in sizes:
        nb = max(1, -(-n // stream.bpb))
        buf = b"".join(stream.word(cursor + k) for k in range(nb))[:n]
        out.append(buf)
        cursor += nb
    return out, cursor


async def run_rng_stress(tb, count, seed, log=print):
    rng = random.Random(seed)
    stream = EntropyStream(tb.width)
    cursor, synced = 0, True
    rq = await tb.start(size=16)
    indirect = tb.drv.negotiated(F.RING_INDIRECT_DESC)
    outstanding = {}               # head -> writable sizes
    returned, resets, qresets, frozen = 0, 0, 0, []
    while returned < count:
        # post
        while len(rq.sq.free) >= 4 and len(outstanding) < 8 and rng.random() < 0.7:
            sizes = [rng.randint(1, 600) for _ in range(rng.randint(1, 3))]
            out = [bytes(rng.randint(1, 40))] if rng.random() < 0.2 else []
            head = rq.sq.add(out=out, inp=sizes, indirect=indirect and rng.random() < 0.3)
            outstanding[head] = sizes
        if rng.random() < 0.1:
            rq.sq.no_interrupt(rng.random() < 0.5)
        await rq.kick()
        await tb.cycles(rng.randint(5, 400))
        for uid, ulen, datas in rq.sq.used():
            sizes = outstanding.pop(uid)
            assert ulen == sum(sizes), f"chain {uid}: used len {ulen}, buffers {sizes}"
            data = b"".join(datas)
            if not synced:
                at = stream.find(data[:stream.bpb], cursor) if len(data) >= stream.bpb else None
                if at is None:
                    continue           # too short to find: resynchronise on a later chain
                cursor, synced = at, True
            exp, cursor = _expected(stream, cursor, sizes)
            assert data == b"".join(exp), f"chain {uid}: bytes are not the entropy stream's"
            returned += 1
        for sq, snap in frozen:
            assert bytes(sq.rd(sq.device, 6 + 8 * sq.size)) == snap, "old used ring written"
        r = rng.random()
        if r < 0.03 or r < 0.06:
            old = rq.sq
            if r < 0.03:
                qresets += 1
                await tb.drv.queue_reset(0)
                base, mem = tb.rc.alloc_region(1 << 16)
                rq.sq = SplitQueue(mem, base, 16, event_idx=tb.drv.negotiated(F.RING_EVENT_IDX))
                await tb.drv.reenable_vq(rq.vq, desc=rq.sq.desc, driver=rq.sq.driver,
                                         device=rq.sq.device)
            else:
                resets += 1
                await tb.drv.reset()
                rq = await tb.start(size=16, init=False)
            frozen.append((old, bytes(old.rd(old.device, 6 + 8 * old.size))))
            frozen = frozen[-4:]
            outstanding.clear()
            synced = False
        assert not await tb.drv.get_status() & Status.DEVICE_NEEDS_RESET
    log(f"rng stress: {returned} chains checked, {qresets} queue resets, {resets} device resets, "
        f"{cursor} entropy words")
    return returned
