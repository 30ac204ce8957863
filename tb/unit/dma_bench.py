"""A unit-test bench around the requester (hdl/virtio_pci/dma/requester.py) on Amaranth's
simulator: a back-end that issues requests and data, a host (``tb.models.dma_model``) that answers MRds
with completions split and interleaved at random, checks of every TLP against the PCIe rules.

``ReqBench(width=..., ...).run(requests)`` with requests ``(write, addr, length)``; returns the
bench with ``rdata`` (per read request: (bytes, status)), ``wdone`` (statuses), ``tlps`` (decoded
MRd/MWr in tx order) and ``mem`` (host memory after the writes).
"""
import random

from virtio_pci.dma.requester import Requester

from tb.models.dma_model import HostMemory, parse_request, split_read
from tb.tlp.convert import beats_to_dws, dws_to_beats

from .helpers import Bench, StreamMonitor, drive, payload_bits

__all__ = ["ReqBench"]

RID = 0x0A08     # bus 10, device 1


class ReqBench:
    def __init__(self, *, width=128, n_tags=32, max_read=512, max_payload=256, timeout=4000,
                 mps=1, mrrs=2, ext_tag=0, rng=None, name="dma", split="random", rcb=64,
                 req_idle=0.0, rx_idle=0.0, ready_prob=1.0, hold=None, cpl_latency=4,
                 relaxed_en=1, no_snoop_en=1, bus_master=1):
        self.w = width
        self.B = width // 8
        self.dut = Requester(width, n_tags=n_tags, max_read=max_read, max_payload=max_payload,
                             timeout=timeout)
        self.bench = Bench(self.dut, name)
        self.rng = rng or random.Random(1)
        self.timeout = timeout
        self.mem = HostMemory()
        self.cfg = dict(mps=mps, mrrs=mrrs, ext_tag=ext_tag, relaxed_en=relaxed_en,
                        no_snoop_en=no_snoop_en, bus_master=bus_master)
        self.split, self.rcb = split, rcb
        self.req_idle, self.rx_idle, self.ready_prob = req_idle, rx_idle, ready_prob
        self.cpl_latency = cpl_latency
        #: hold(req) -> list of completions to send instead of the good ones (or None: good ones);
        #: it sets ``req.abandoned`` when the RTL must quarantine the tag (missing or
        #: inconsistent completions): the bench then allows its reuse only after the timeout
        self.hold = hold
        self.tlps = []
        self.outstanding = {}       # tag -> MemReq
        self.max_outstanding = 0
        self.rdata = []
        self.wdone = []
        self.pending = []           # [ready_cycle, [completions]] per MRd
        self.flr_at = None
        self.bme_clear_at = None
        self.extra_rx = []          # (cycle, dws) completions injected at a cycle
        self.tags_free = None
        self.errors = {n: 0 for n in ("err_unexpected", "err_malformed", "err_timeout", "got_ur",
                                      "got_ca", "got_poisoned")}

    # -- processes ---------------------------------------------------------------------------
    def run(self, requests, *, wdata=None, timeout=60000, wait=None):
        d, b = self.dut, self.bench
        self.requests = requests
        reqs = [{"write": int(w), "addr": a, "len_m1": n - 1, "relaxed": 1, "no_snoop": 0}
                for w, a, n in requests]
        if wdata is None:
            wdata = {}
            for i, (w, a, n) in enumerate(requests):
                if w:
                    wdata[i] = bytes(self.rng.getrandbits(8) for _ in range(n))
        self.wbytes = wdata
        beats = []
        for i, (w, a, n) in enumerate(requests):
            if w:
                data = wdata[i]
                nb = (n + self.B - 1) // self.B
                for k in range(nb):
                    chunk = data[k * self.B:(k + 1) * self.B]
                    beats.append({"data": int.from_bytes(chunk, "little"), "last": int(k == nb - 1)})
        n_reads = sum(1 for w, _, _ in requests if not w)
        n_writes = len(requests) - n_reads

        async def setup(ctx):
            ctx.set(d.requester_id, RID)
            for k, v in self.cfg.items():
                ctx.set(getattr(d, k), v)

        mrd_mon = StreamMonitor(d.mrd, b.cycle, rng=self.rng, ready_prob=self.ready_prob, name="mrd")
        mwr_mon = StreamMonitor(d.mwr, b.cycle, rng=self.rng, ready_prob=self.ready_prob, name="mwr")
        rd_mon = StreamMonitor(d.dma_rdata, b.cycle, rng=self.rng, ready_prob=self.ready_prob,
                               name="rdata")
        wd_mon = StreamMonitor(d.dma_wdone, b.cycle, rng=self.rng, ready_prob=self.ready_prob,
                               name="wdone")
        self.mons = (mrd_mon, mwr_mon, rd_mon, wd_mon)

        async def req_drv(ctx):
            await setup(ctx)
            await drive(ctx, d.dma_req, reqs, b.cycle, rng=self.rng, idle=self.req_idle,
                        accepted=self.req_accepted)

        self.req_accepted = []

        async def wdata_drv(ctx):
            await drive(ctx, d.dma_wdata, beats, b.cycle, rng=self.rng, idle=self.req_idle)

        async def host(ctx):
            """Turns MRds into completions and drives them on rx (random interleaving)."""
            seen = [0, 0]
            rx_queue = []
            cur = None
            cur_bad = False
            while True:
                _, _, c = await ctx.tick().sample(b.cycle)
                for idx, mon in ((0, mrd_mon), (1, mwr_mon)):
                    while seen[idx] < len(self._tlp_items(mon)):
                        dws = self._tlp_items(mon)[seen[idx]]
                        seen[idx] += 1
                        self._on_tlp(dws, c)
                # completions that are due, interleaved between tags, in order within one
                due = [p for p in self.pending if p[0] <= c and p[1]]
                for cy, dws in list(self.extra_rx):
                    if cy <= c:
                        rx_queue.append(dws)
                        self.extra_rx.remove((cy, dws))
                if cur is None and (due or rx_queue):
                    if rx_queue:
                        dws = rx_queue.pop(0)
                    else:
                        p = self.rng.choice(due)
                        dws = p[1].pop(0)
                        if not p[1] and not getattr(p[2], "abandoned", False):
                            self.outstanding.pop(p[2].tag, None)
                    if isinstance(dws, tuple):
                        # ("fragment", beats): raw beats the depacketizer drops as malformed
                        cur, cur_bad = list(dws[1]), True
                    else:
                        cur, cur_bad = [bt for bt in dws_to_beats(dws, self.w)], False
                if cur and not (self.rx_idle and self.rng.random() < self.rx_idle):
                    data, keep, first, last = cur.pop(0)
                    ctx.set(d.rx_beat, {"data": data, "keep": keep, "first": first, "last": last})
                    ctx.set(d.rx_fire, 1)
                    ctx.set(d.rx_malformed, int(cur_bad and bool(last)))
                    if not cur:
                        cur = None
                else:
                    ctx.set(d.rx_fire, 0)
                    ctx.set(d.rx_malformed, 0)
                if self.flr_at is not None:
                    ctx.set(d.flr, int(c + 1 == self.flr_at))
                if self.bme_clear_at is not None and c + 1 >= self.bme_clear_at:
                    ctx.set(d.bus_master, 0)

        async def errs(ctx):
            names = list(self.errors)
            async for _, _, free, *vals in ctx.tick().sample(
                    d.tags_free, *(getattr(d, n) for n in names)):
                self.tags_free = free
                for n, v in zip(names, vals):
                    self.errors[n] += int(v)

        async def finish(ctx):
            while len(rd_mon.items) < self._rd_beats_expected() or len(wd_mon.items) < n_writes:
                await ctx.tick()
            for _ in range(wait or 20):
                await ctx.tick()

        b.add(req_drv)
        b.add(wdata_drv)
        b.add(finish)
        for mon in self.mons:
            b.add(mon, background=True)
        b.add(host, background=True)
        b.add(errs, background=True)
        b.run(timeout=timeout)
        self._collect(rd_mon, wd_mon)
        return self

    def _rd_beats_expected(self):
        return sum((n + self.B - 1) // self.B for w, _, n in self.requests if not w)

    def _tlp_items(self, mon):
        # TLPs assembled from a monitor's beats (cached by length)
        key = id(mon)
        cache = self.__dict__.setdefault("_tlp_cache", {})
        ent = cache.setdefault(key, {"n": 0, "cur": [], "tlps": []})
        while ent["n"] < len(mon.items):
            _, p = mon.items[ent["n"]]
            ent["n"] += 1
            beat = (payload_bits(p.data), payload_bits(p.keep), int(p.first), int(p.last))
            if beat[2]:
                assert not ent["cur"], "TLP restarted before its last beat"
            ent["cur"].append(beat)
            if beat[3]:
                ent["tlps"].append(beats_to_dws(ent["cur"], self.w))
                ent["cur"] = []
        return ent["tlps"]

    def _on_tlp(self, dws, cycle):
        r = parse_request(dws)
        self.tlps.append((cycle, r))
        if r.write:
            self.mem.write(r.start, r.data)
            return
        old = self.outstanding.get(r.tag)
        if old is not None:
            # a tag whose completions never (all) came may be reused only after the timeout
            assert getattr(old, "abandoned", False) and cycle - old.issued >= self.timeout, \
                f"tag {r.tag} reused while outstanding"
        r.issued = cycle
        self.outstanding[r.tag] = r
        self.max_outstanding = max(self.max_outstanding, len(self.outstanding))
        cpls = self.hold(r) if self.hold else None
        if cpls is None:
            cpls = split_read(r, self.mem, self.rng, rcb=self.rcb, mps=128 << self.cfg["mps"],
                              mode=self.split)
        if not cpls and not getattr(r, "abandoned", False):
            self.outstanding.pop(r.tag)
        self.pending.append([cycle + self.cpl_latency, cpls, r])

    def _collect(self, rd_mon, wd_mon):
        out, cur = [], b""
        for _, p in rd_mon.items:
            cur += payload_bits(p.data).to_bytes(self.B, "little")
            if p.last:
                out.append((cur, p.status.value if hasattr(p.status, "value") else int(p.status)))
                cur = b""
        reads = [(a, n) for w, a, n in self.requests if not w]
        self.rdata = [(bts[:n], st, bts[n:]) for (bts, st), (_, n) in zip(out, reads)]
        self.wdone = [p.value if hasattr(p, "value") else int(p) for _, p in wd_mon.items]
