"""Depacketizer alone: rx beats in, DW operations out (tlp/depacketizer.py).

Every TLP is encoded by cocotbext-pcie (tb/unit/helpers.py) or by hand from the PCIe header
layout, and every expectation comes from the independent reference in tb/models/pcie_rules.py.
"""
import pytest

from cocotbext.pcie.core.tlp import TlpType

from virtio_pci.params import VirtioPciParams
from virtio_pci.tlp.depacketizer import Depacketizer
from virtio_pci.tlp.layouts import Space

from tb.tlp.requests import atomic_req, cfg_req, cpl_tlp, io_req, mem_req, msg_req

from .helpers import Bench, drive, StreamMonitor, Sampler, beats_of, seeded
from tb.models.pcie_rules import Env, ref_ops

WIDTHS = [64, 128, 256]
ERRS = ("malformed", "ur", "poisoned", "unexpected_cpl", "msg")
BAR32 = 0xFEB0_0000
BAR64 = 0x38_0000_0000


def make_env(p, base, **kw):
    return Env(bar_base=base, bar_size=p.mem_bar_size, mps_supported=p.max_payload_supported, **kw)


def run_depkt(p, env, tlps, *, name, rng=None, idle=0.0, ready_prob=1.0, beats=None, timeout=None):
    """Drive ``tlps`` (lists of DWs) or explicit ``beats`` into a Depacketizer.

    Returns (ops, offered, accepted, errors): transferred ops as (edge, payload); edge where each op
    first showed valid; edge of every accepted rx beat; set of (edge, error name) pulses.
    """
    dut = Depacketizer(p)
    b = Bench(dut, name)
    if beats is None:
        beats = [bt for t in tlps for bt in beats_of(t, p.data_width)]
    accepted = []
    mon = StreamMonitor(dut.op, b.cycle, rng=rng, ready_prob=ready_prob, name="op")
    errs = Sampler(b.cycle, dut.err_malformed, dut.err_ur, dut.err_poisoned, dut.err_unexpected_cpl,
                   dut.msg_dropped)

    async def main(ctx):
        ctx.set(dut.mem_bar_base, env.bar_base)
        ctx.set(dut.mem_enable, env.mem_enable)
        ctx.set(dut.mps, env.mps_code)
        if env.io_base is not None:
            ctx.set(dut.io_bar_base, env.io_base)
            ctx.set(dut.io_enable, env.io_enable)
        await drive(ctx, dut.rx, beats, b.cycle, rng=rng, idle=idle, accepted=accepted)
        # drain: wait until no operation has been pending for a while
        quiet = 0
        while quiet < 8:
            _, _, v = await ctx.tick().sample(dut.op.valid)
            quiet = 0 if v else quiet + 1

    b.add(main)
    b.add(mon, background=True)
    b.add(errs, background=True)
    b.run(timeout=timeout or 5000 + 40 * len(beats))
    pulses = {(row[0], n) for row in errs.rows for n, v in zip(ERRS, row[1:]) if v}
    offered = mon.offered
    return mon.items, offered, accepted, pulses


def check_op(got, exp, where):
    assert got.space == exp["space"], f"{where}: space {got.space} != {exp['space']}"
    if exp["space"] != Space.NONE:
        assert got.write == exp["write"], f"{where}: write"
        assert got.addr == exp["addr"], f"{where}: addr {got.addr:#x} != {exp['addr']:#x}"
        assert got.be == exp["be"], f"{where}: be {got.be:#x} != {exp['be']:#x}"
        if exp["data"] is not None:
            assert got.data == exp["data"], f"{where}: data {got.data:#x} != {exp['data']:#x}"
    assert got.need_cpl == exp["need_cpl"], f"{where}: need_cpl"
    if exp["need_cpl"]:
        assert (got.cpl_start, got.cpl_end) == (exp["cpl_start"], exp["cpl_end"]), \
            f"{where}: cpl_start/cpl_end {(got.cpl_start, got.cpl_end)} != {(exp['cpl_start'], exp['cpl_end'])}"
    if exp["cpl"] is not None:
        for k, v in exp["cpl"].items():
            g = getattr(got.cpl, k)
            assert g == v, f"{where}: cpl.{k} {g!r} != {v!r}"


def check_run(p, env, tlps, result, *, timing=True):
    ops, offered, accepted, pulses = result
    lanes = p.data_width // 32
    exp_pulses = set()
    k = 0
    nbeat = 0
    for n, t in enumerate(tlps):
        nbeat += -(-len(t) // lanes)
        last_edge = accepted[nbeat - 1]
        eops, eerrs = ref_ops(t, env)
        exp_pulses |= {(last_edge, e) for e in eerrs}
        for j, e in enumerate(eops):
            assert k < len(ops), f"TLP {n} ({t[0]:#010x}): missing op {j}"
            check_op(ops[k][1], e, f"TLP {n} ({t[0]:#010x}) op {j}")
            if j == 0 and timing:
                assert offered[k] == last_edge + 1, \
                    f"TLP {n}: first op valid at edge {offered[k]}, last beat at {last_edge}"
            k += 1
    assert k == len(ops), f"{len(ops) - k} unexpected ops after the last expected one"
    assert pulses == exp_pulses, f"error pulses: extra {sorted(pulses - exp_pulses)}, " \
                                 f"missing {sorted(exp_pulses - pulses)}"


# ---- request generators ------------------------------------------------------------------------

def contiguous_be(rng, first):
    n = rng.randint(1, 4)
    return ((0xF << (4 - n)) & 0xF) if first else (0xF >> (4 - n))


def rand_be(rng, length):
    if length == 1:
        return rng.choice([0xF, 0xF, 0x1, 0x6, 0x8, 0x5, 0x0, 0xC]), 0
    if length == 2:
        return rng.randint(1, 15), rng.randint(1, 15)
    return contiguous_be(rng, True), contiguous_be(rng, False)


def rand_mem(rng, env, base, *, write, inside=True, max_len=None):
    mps = env.mps
    if write:
        length = rng.choice([1, 1, 2, 3, rng.randint(1, mps // 4)])
    else:
        length = rng.choice([1, 1, 2, 5, rng.randint(1, 64), rng.randint(1, 300)])
    if max_len:
        length = min(length, max_len)
    if inside:
        dw = rng.randrange(env.bar_size // 4)
    else:
        dw = rng.randrange(env.bar_size // 4) + rng.choice([-1, 1]) * env.bar_size // 4
    # keep inside one 4 KiB page
    page_dw = dw & ~0x3FF
    off = dw & 0x3FF
    if off + length > 1024:
        off = 1024 - length
    addr = base + (page_dw + off) * 4
    fbe, lbe = rand_be(rng, length)
    return mem_req(addr, length, write=write, fbe=fbe, lbe=lbe, tag=rng.randrange(1024),
                   rid=rng.randrange(1 << 16), tc=rng.randrange(8), attr=rng.randrange(8))


def rand_cfg(rng):
    write = rng.random() < 0.5
    return cfg_req(rng.randrange(1024), write=write, data=rng.getrandbits(32), fbe=rng.randrange(16),
                   bus=rng.randrange(256), dev=rng.randrange(32), tag=rng.randrange(1024),
                   rid=rng.randrange(1 << 16))


def random_tlps(rng, env, base, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            out.append(rand_mem(rng, env, base, write=True))
        elif r < 0.6:
            out.append(rand_mem(rng, env, base, write=False))
        elif r < 0.85:
            out.append(rand_cfg(rng))
        else:
            out.append(rand_mem(rng, env, base, write=rng.random() < 0.5, inside=False, max_len=4))
    return out


# ---- tests ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("bar", ["bar32", "bar64"])
def test_random_requests(width, bar):
    """Random MRd/MWr (32/64-bit) inside and outside the BAR and CfgRd0/CfgWr0, random idle on rx and
    random back-pressure on op: every op checked field by field, first op 1 cycle after the last
    beat, error pulses exactly where the reference puts them."""
    p = VirtioPciParams(data_width=width)
    base = BAR32 if bar == "bar32" else BAR64
    rng = seeded("random", width, bar)
    for mps_code in (0, 1):
        env = make_env(p, base, mps_code=mps_code)
        tlps = random_tlps(rng, env, base, 60)
        res = run_depkt(p, env, tlps, name=f"depkt_random_{width}_{bar}_{mps_code}", rng=rng,
                        idle=0.3, ready_prob=0.6)
        check_run(p, env, tlps, res)


@pytest.mark.parametrize("width", WIDTHS)
def test_decode_and_split(width):
    """Directed: 32/64-bit reads and writes at the BAR edges, multi-DW writes spanning beats, reads
    split at MPS boundaries, zero-length read, 1024-DW read, CfgRd0/CfgWr0 with extended register."""
    p = VirtioPciParams(data_width=width, max_payload_supported=512)
    size = p.mem_bar_size
    tlps32 = [
        mem_req(BAR32, 1, tag=1),                                    # first DW of the BAR
        mem_req(BAR32 + size - 4, 1, tag=2),                         # last DW of the BAR
        mem_req(BAR32 - 4, 1, tag=3),                                # just below: UR
        mem_req(BAR32 + size, 1, tag=4),                             # just above: UR
        mem_req(BAR32 + 0x10, 1, write=True, data=[0x11223344], fbe=0x6),
        mem_req(BAR32 + 0x20, 13, write=True, fbe=0xE, lbe=0x3),     # spans beats at every width
        mem_req(BAR32 + 0x104, 2, write=True, fbe=0x5, lbe=0xA),     # non-contiguous QW write
        mem_req(BAR32 + 0x40, 1, fbe=0),                             # zero-length read
        mem_req(BAR32 + 0x0F0, 70, fbe=0xC, lbe=0x1, tag=0x3FF),     # crosses MPS boundaries
        mem_req(BAR32 + 0x1000, 1024, fbe=0xF, lbe=0xF, tag=5),      # 4 KiB read, length field 0
        mem_req(BAR32 - 0x1000, 3, write=True),                      # posted, outside: dropped
        cfg_req(0x3FF, bus=0x12, dev=0x1F, tag=7),                   # extended register 0xFFC
        cfg_req(0x004, write=True, data=0xDEADBEEF, fbe=0x3, bus=3, dev=4, rid=0x0101),
        mem_req(BAR32 + 0x2FF8, 5, fbe=0xF, lbe=0xF),                # 4 KiB crossing: malformed
    ]
    for mps_code in (0, 2, 5):
        env = make_env(p, BAR32, mps_code=mps_code)
        tlps = tlps32
        check_run(p, env, tlps, run_depkt(p, env, tlps, name=f"depkt_decode32_{width}_{mps_code}"))
    tlps64 = [
        mem_req(BAR64, 1, tag=1),
        mem_req(BAR64 + size - 8, 2, fbe=0x8, lbe=0x1),
        mem_req(BAR64 + size, 1),                                    # above: UR
        mem_req(BAR64 + (1 << 32), 1),                               # upper DW differs: UR
        mem_req(BAR64 & 0xFFFF_FFFF, 1),                             # 32-bit alias: UR
        mem_req(BAR64 + 0x38, 9, write=True, fbe=0xF, lbe=0x7),
        mem_req(BAR64 + 0x7C, 40, fbe=0xF, lbe=0xF),
    ]
    env = make_env(p, BAR64, mps_code=0)
    check_run(p, env, tlps64, run_depkt(p, env, tlps64, name=f"depkt_decode64_{width}"))


@pytest.mark.parametrize("width", [64, 256])
def test_completer_id_capture(width):
    """completer_id takes bus/device of each served CfgRd0/CfgWr0 (function 0), nothing else
    (memory decode is left disabled here, so the MRd is a UR)."""
    p = VirtioPciParams(data_width=width)
    dut = Depacketizer(p)
    b = Bench(dut, f"depkt_cid_{width}")
    seen = []
    mon = StreamMonitor(dut.op, b.cycle, name="op")

    async def main(ctx):
        assert ctx.get(dut.completer_id) == 0
        for t, cid in ((cfg_req(0, bus=0x5A, dev=0x13), 0x5A98),
                       (cfg_req(1, bus=0x01, dev=0x02, fn=3), 0x5A98),       # function 3: UR, no capture
                       (cfg_req(1, bus=0x01, dev=0x02, type1=True), 0x5A98),  # type 1: UR, no capture
                       (mem_req(BAR32, 1), 0x5A98),
                       (cfg_req(2, write=True, bus=0xC3, dev=0x1F), 0xC3F8)):
            await drive(ctx, dut.rx, beats_of(t, width), b.cycle)
            await ctx.tick()
            seen.append(ctx.get(dut.completer_id))
            assert seen[-1] == cid, f"completer id {seen[-1]:#06x}, expected {cid:#06x}"

    b.add(main)
    b.add(mon, background=True)
    b.run()
    assert [o.space for _, o in mon.items] == [Space.CFG, Space.NONE, Space.NONE, Space.NONE, Space.CFG]


@pytest.mark.parametrize("width", WIDTHS)
def test_unsupported_requests(width):
    """Non-posted requests that are not served: one NONE op with status UR; posted ones: no op."""
    p = VirtioPciParams(data_width=width)
    env = make_env(p, BAR32)
    tlps = [
        cfg_req(0, type1=True, tag=1),                                # CfgRd1
        cfg_req(0, type1=True, write=True, tag=2),                    # CfgWr1
        cfg_req(0, fn=1, tag=3),                                      # function 1 of a single-function device
        cfg_req(0, fn=7, write=True, tag=4),
        mem_req(BAR32 + 0x40, 4, locked=True, fbe=0xE, lbe=0x3, tag=5),   # MRdLk
        mem_req(BAR64, 1, locked=True, tag=6),                        # MRdLk 64
        atomic_req(TlpType.FETCH_ADD, BAR32, 1, tag=7),
        atomic_req(TlpType.SWAP_64, BAR64, 2, tag=8),
        atomic_req(TlpType.CAS, BAR32, 4, tag=9),
        io_req(0x1000, tag=10),                                       # no I/O BAR
        io_req(0x1000, write=True, data=5, tag=11),
        mem_req(BAR64 + 0x14, 3, fbe=0xE, lbe=0x7, tag=12, tc=3, attr=5),   # outside the BAR
        mem_req(BAR32 + 0x100, 2, write=True, ep=True),               # poisoned write: UR, dropped
        cfg_req(1, write=True, ep=True, tag=13),                      # poisoned config write: UR
        mem_req(0x1000, 1, write=True),                               # MWr outside: dropped
        mem_req(BAR64 + 0x10, 2, write=True, force64=True),           # MWr64 outside: dropped
        msg_req(0x20),                                                # Assert_INTA
        msg_req(0x7F, routing=0b011, data=[1, 2, 3]),                 # vendor MsgD
        msg_req(0x19, routing=0b011),                                 # PME_Turn_Off
        msg_req(0x7E, routing=0b010),                                 # Vendor_Defined Type 0: UR
        cpl_tlp(tag=3),                                               # unexpected Cpl
        cpl_tlp(data=[1, 2, 3, 4], byte_count=16),                    # unexpected CplD
    ]
    res = run_depkt(p, env, tlps, name=f"depkt_ur_{width}")
    check_run(p, env, tlps, res)
    ops = res[0]
    assert len(ops) == 13
    assert all(o.space == Space.NONE and o.cpl.status.name == "UR" for _, o in ops)
    # memory enable off: the BAR itself answers UR
    env_off = make_env(p, BAR32, mem_enable=0)
    tlps = [mem_req(BAR32, 1, tag=20), mem_req(BAR32 + 8, 2, write=True), mem_req(BAR32, 8, tag=21)]
    check_run(p, env_off, tlps, run_depkt(p, env_off, tlps, name=f"depkt_ur_disabled_{width}"))


def test_io_bar_transitional():
    p = VirtioPciParams(transitional=True, mem_bar=2, data_width=128)
    env = make_env(p, BAR32, io_base=0xC040, io_size=p.io_bar_size, io_enable=1)
    tlps = [io_req(0xC040, tag=1), io_req(0xC04C, write=True, data=0x1234, fbe=0x3, tag=2),
            io_req(0xC040 + p.io_bar_size, tag=3), io_req(0xC03C, write=True, tag=4)]
    check_run(p, env, tlps, run_depkt(p, env, tlps, name="depkt_io"))
    env.io_enable = 0
    check_run(p, env, tlps, run_depkt(p, env, tlps, name="depkt_io_disabled"))


def malformed_tlps(p, env):
    good_wr = mem_req(BAR32 + 0x10, 4, write=True)
    good_rd = mem_req(BAR32 + 0x10, 4)
    td_wr = mem_req(BAR32 + 0x20, 3, write=True, td=True)
    td_rd = mem_req(BAR32 + 0x20, 1, td=True)
    cases = {
        "payload_short": good_wr[:-1],
        "payload_long": good_wr + [0x55],
        "read_with_payload": good_rd + [0x55],
        "read_short": good_rd[:2],
        "digest_missing": td_wr[:-1],
        "digest_extra": td_rd + [0],
        "prefix": [0x8E00_0000] + good_wr,                          # vendor local prefix
        "e2e_prefix": [0x9000_0000] + good_rd,
        "undefined_type": [0x1C00_0001] + good_rd[1:],
        "msg_3dw": [0x1000_0000] + good_rd[1:],                    # Fmt 000, Type 10000
        "lbe_on_1dw": mem_req(BAR32, 1, fbe=0xF, lbe=0xF),
        "fbe0_multi": mem_req(BAR32, 2, fbe=0x0, lbe=0xF),
        "lbe0_multi": mem_req(BAR32, 3, write=True, fbe=0xF, lbe=0x0),
        "cross_4k_rd": mem_req(BAR32 + 0xFFC, 2),
        "cross_4k_wr": mem_req(BAR32 + 0x0F00, 0x41, write=True) if env.mps >= 0x41 * 4 else
        mem_req(BAR32 + 0x0FF8, 3, write=True),
        "write_over_mps": mem_req(BAR32, env.mps // 4 + 1, write=True),
        "cpld_over_mps": cpl_tlp(data=[0] * (env.mps // 4 + 1), byte_count=env.mps + 4),
        "msgd_over_mps": msg_req(0x7F, routing=0b011, data=[0] * (env.mps // 4 + 1)),
        "cfg_tc": cfg_req(0, tc=1),
        "cfg_lbe": [cfg_req(0)[0], cfg_req(0)[1] | 0xF0, cfg_req(0)[2]],
        "io_len2": [io_req(0)[0] + 1] + io_req(0)[1:],
        "cfgwr_len2": [cfg_req(0, write=True)[0] + 1] + cfg_req(0, write=True)[1:] + [0],
    }
    return cases


@pytest.mark.parametrize("width", WIDTHS)
def test_malformed(width):
    """Each malformed TLP: no op, one err_malformed pulse at its last beat; the good TLPs around them
    are still served (no desynchronisation)."""
    p = VirtioPciParams(data_width=width)
    env = make_env(p, BAR32, mps_code=0)
    cases = malformed_tlps(p, env)
    for name, t in cases.items():
        ops, errs = ref_ops(t, env)
        assert ops == [] and errs == {"malformed"}, f"reference does not call {name} malformed"
    accepted_ok = [mem_req(BAR32 + 0x20, 3, write=True, td=True), mem_req(BAR32 + 0x20, 1, td=True),
                   mem_req(BAR32, 1, fbe=0x0), mem_req(BAR32 + 0xFF8, 2), mem_req(BAR32, 32, write=True)]
    tlps = []
    for i, t in enumerate(cases.values()):
        tlps += [t, accepted_ok[i % len(accepted_ok)]]
    rng = seeded("malformed", width)
    check_run(p, env, tlps, run_depkt(p, env, tlps, name=f"depkt_malformed_{width}", rng=rng,
                                      idle=0.2, ready_prob=0.7))


@pytest.mark.parametrize("width", WIDTHS)
def test_framing_errors(width):
    """Beats that break the framing: a fragment without ``first`` and a ``first`` in the middle of a
    TLP.  The broken TLP gives no op and one err_malformed pulse; the next TLP is served."""
    p = VirtioPciParams(data_width=width)
    env = make_env(p, BAR32)
    lanes = width // 32
    good = mem_req(BAR32 + 0x40, 2, write=True, data=[0xA, 0xB])
    long_wr = mem_req(BAR32 + 0x80, 3 * lanes, write=True)     # at least 4 beats
    good_beats = beats_of(good, width)
    long_beats = beats_of(long_wr, width)
    assert len(long_beats) >= 3
    # 1: fragment without first: the tail beats of long_wr, then a good TLP
    frag = long_beats[1:]
    # 2: first in the middle: the first two beats of long_wr, then a good TLP
    cut = long_beats[:2]
    # 3: first beat with first=0 of a single-beat-capable TLP
    nofirst = [dict(bt, first=0) for bt in beats_of(mem_req(BAR32, 1), width)]
    beats = frag + good_beats + cut + good_beats + nofirst + good_beats
    ops, offered, accepted, pulses = run_depkt(p, env, None, name=f"depkt_framing_{width}", beats=beats,
                                               timeout=2000)
    edges = {}
    pos = 0
    for label, seq in (("frag", frag), ("g1", good_beats), ("cut", cut), ("g2", good_beats),
                       ("nofirst", nofirst), ("g3", good_beats)):
        edges[label] = accepted[pos:pos + len(seq)]
        pos += len(seq)
    exp_ops, _ = ref_ops(good, env)
    assert len(ops) == 3 * len(exp_ops), f"{len(ops)} ops, expected {3 * len(exp_ops)} (only the good TLPs)"
    for k, (_, o) in enumerate(ops):
        check_op(o, exp_ops[k % len(exp_ops)], f"op {k}")
    expected = {(edges["frag"][-1], "malformed"),      # at the fragment's last beat
                (edges["g2"][0], "malformed"),         # the interrupted TLP, when the new first comes
                (edges["nofirst"][-1], "malformed")}
    assert pulses == expected, f"pulses {sorted(pulses)}, expected {sorted(expected)}"


@pytest.mark.parametrize("width,kind", [(128, "mwr32"), (128, "mrd32"), (128, "cfgrd"),
                                        (256, "mwr32"), (256, "mwr64"), (256, "cfgwr")])
def test_back_to_back_throughput(width, kind):
    """Single-DW requests in one beat each, op.ready=1: one TLP accepted per cycle, each op valid
    exactly 1 cycle after its beat, ops leave back to back (DESIGN.md section 8)."""
    p = VirtioPciParams(data_width=width)
    env = make_env(p, BAR64 if kind == "mwr64" else BAR32)
    n = 24
    make = {
        "mwr32": lambda i: mem_req(BAR32 + 4 * i, 1, write=True, data=[i], fbe=0xF),
        "mwr64": lambda i: mem_req(BAR64 + 4 * i, 1, write=True, data=[i]),
        "mrd32": lambda i: mem_req(BAR32 + 4 * i, 1, tag=i),
        "cfgrd": lambda i: cfg_req(i, tag=i),
        "cfgwr": lambda i: cfg_req(i, write=True, data=i),
    }[kind]
    tlps = [make(i) for i in range(n)]
    assert all(len(beats_of(t, width)) == 1 for t in tlps)
    res = run_depkt(p, env, tlps, name=f"depkt_b2b_{width}_{kind}")
    ops, offered, accepted, pulses = res
    check_run(p, env, tlps, res)
    assert accepted == list(range(accepted[0], accepted[0] + n)), f"rx not accepted every cycle: {accepted}"
    assert [c for c, _ in ops] == [a + 1 for a in accepted], "ops not valid 1 cycle after each beat"


@pytest.mark.parametrize("width", WIDTHS)
def test_multi_op_throughput(width):
    """A multi-DW write emits one op per cycle once its last beat is in, and the next TLP's beats are
    taken as soon as the last op of the previous one is loaded."""
    p = VirtioPciParams(data_width=width)
    env = make_env(p, BAR32)
    tlps = [mem_req(BAR32 + 0x100, 8, write=True), mem_req(BAR32, 1, tag=9)]
    ops, offered, accepted, pulses = res = run_depkt(p, env, tlps, name=f"depkt_multi_{width}")
    check_run(p, env, tlps, res)
    last = accepted[len(beats_of(tlps[0], width)) - 1]
    assert [c for c, _ in ops[:8]] == list(range(last + 1, last + 9))
    assert ops[8][0] == last + 8 + len(beats_of(tlps[1], width))


@pytest.mark.parametrize("width", [64, 256])
def test_max_sizes(width):
    """Max_Payload_Size 4096 (supported and programmed): a 1024-DW write (length field 0) is stored
    and emitted whole; a 1024-DW read from a 4 KiB boundary is one completion (length 0, byte count
    0 = 4096); one DW more than MPS is malformed (the read is not: reads may be longer)."""
    p = VirtioPciParams(data_width=width, max_payload_supported=4096)
    env = make_env(p, BAR64, mps_code=5)
    rng = seeded("max", width)
    tlps = [mem_req(BAR64 + 0x1000, 1024, write=True, data=[rng.getrandbits(32) for _ in range(1024)]),
            mem_req(BAR64 + 0x2000, 1024, tag=0x155),
            mem_req(BAR64 + 0x2004, 1023, fbe=0x8, lbe=0x1, tag=0x2AA)]
    check_run(p, env, tlps, run_depkt(p, env, tlps, name=f"depkt_max_{width}", rng=rng, ready_prob=0.8))
    env = make_env(p, BAR64, mps_code=1)
    tlps = [mem_req(BAR64 + 0x1000, 65, write=True), mem_req(BAR64 + 0x1000, 64, write=True),
            mem_req(BAR64 + 0x1000, 200)]
    check_run(p, env, tlps, run_depkt(p, env, tlps, name=f"depkt_max_mps256_{width}"))
