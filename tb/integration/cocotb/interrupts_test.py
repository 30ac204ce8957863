"""Interrupts through the root complex: MSI-X capability, table and PBA, MSI-X writes (3-DW and
4-DW), masking, Bus Master Enable, NO_VECTOR, the ISR/INTx path, configuration-change
notifications, Linux's three interrupt strategies, races and resets.

The device is brought up by the Linux-like driver model; MSI-X message targets come from the root
complex's MSI regions, so every MSI-X write is routed by the fabric and counted where it lands
(``tb.env.interrupts``).  Interrupt requests come from the back-end model on the ``irq`` stream, device
configuration changes and DEVICE_NEEDS_RESET from its ``dcfg_write``/``needs_reset``.
"""
import itertools
import random

import cocotb
from cocotb.utils import get_sim_time

from tb.env.fabric import load_desc
from tb.env.testbench import IrqTB
from tb.env.interrupts import linux_find_vqs, linux_init
from tb.host.virtio_driver import NO_VECTOR, CfgType, Status

DESC = load_desc()
P = DESC.params
NQ = P["num_queues"]
N = P["msix_vectors"]
REG = DESC.regions
BAR = DESC.mem_bar["index"]


async def start(dut, strategy="msix_per_vq", **kw):
    env = IrqTB(dut, **kw)
    await env.start()
    _, vectors = await linux_init(env, strategy=strategy)
    return env, vectors


async def program_all(env):
    """Every table entry gets its own target, unmasked: even entries a 32-bit address (3-DW
    writes), odd entries a 64-bit one (4-DW writes)."""
    mx = env.msix
    narrow = mx.alloc((N + 1) // 2)
    wide = mx.alloc(N // 2, wide=True)
    for v in range(N):
        t = narrow[v // 2] if v % 2 == 0 else wide[v // 2]
        await mx.write_entry(v, t.addr, t.data, masked=False)


async def isr_read(env):
    """The INTx handler's 8-bit ISR read (vp_interrupt)."""
    return await env.drv.read(CfgType.ISR, 0, 1)


async def int_status(env):
    return (await env.drv.cfg_read(0x06, 2, "status")) >> 3 & 1


async def set_command(env, *, set_bits=0, clear_bits=0):
    cmd = await env.drv.cfg_read(0x04, 2, "command")
    await env.drv.cfg_write(0x04, 2, (cmd | set_bits) & ~clear_bits, "command")


async def one_event(env, *events, entries, what=""):
    """Fire ``events`` and expect exactly the MSI-X writes to ``entries`` (in any order)."""
    await env.flush()
    m = env.mark()
    await env.irq(*events)
    await env.wait_writes(m[0] + len(entries))
    await env.settle(30)
    got = env.entries_hit(m[0])
    assert sorted(got) == sorted(entries), f"{what}: MSI-X writes to entries {got}, want {entries}"
    assert env.bridge.messages[m[1]:] == [], f"{what}: INTx message with MSI-X enabled"


# ============================================================================ capability
@cocotb.test()
async def msix_capability_test(dut):
    """MSX-01, MSX-02: the MSI-X capability reports Table Size + 1 = the configured
    vector count (2..2048); table and PBA BIR name the 64-bit memory BAR, their offsets are the
    regions of the description, 8-byte aligned, inside the BAR, sized for the table, and they
    overlap neither each other nor any virtio structure; after reset every entry is masked and
    the PBA reads 0; entries read back what was written (64-bit addresses too) and only Enable
    and Function Mask of Message Control are writable."""
    env = IrqTB(dut)
    drv = await env.start()
    mx = env.msix
    ctrl = await mx.control()
    n = (ctrl & 0x7FF) + 1
    assert n == N, f"MSX-02: Table Size + 1 = {n}, configured {N}"
    if N >= 2:
        assert 2 <= n <= 0x800, f"MSX-01: {n} vectors"
    assert ctrl & 0xC000 == 0, f"Message Control {ctrl:#06x} after reset: enabled or masked"
    tbl = await drv.cfg_read(mx.cap + 4, 4, "msix table")
    pba = await drv.cfg_read(mx.cap + 8, 4, "msix pba")
    size = DESC.mem_bar["size"]
    assert tbl & 7 == BAR and pba & 7 == BAR, f"MSX-02: BIR {tbl & 7}/{pba & 7}, BAR {BAR}"
    toff, poff = tbl & ~7, pba & ~7
    assert toff == REG["msix_table"]["offset"] and poff == REG["msix_pba"]["offset"]
    bar_lo = await drv.cfg_read(0x10 + 4 * BAR, 4, f"BAR{BAR}")
    assert bar_lo & 0x7 == 0x4, f"MSX-02: BAR{BAR} ({bar_lo:#x}) is not a 64-bit memory BAR"
    spans = {"table": (toff, 16 * N), "pba": (poff, 8 * ((N + 63) // 64))}
    for name, mp in drv.maps.items():
        if mp.bar == BAR:
            spans[f"virtio cfg_type {name}"] = (mp.offset, mp.length)
    for name, (off, ln) in spans.items():
        assert off + ln <= size, f"MSX-02: {name} {off:#x}+{ln:#x} outside the {size:#x}-byte BAR"
    items = sorted(spans.items(), key=lambda kv: kv[1][0])
    for (a, (ao, al)), (b, (bo, _)) in itertools.pairwise(items):
        assert ao + al <= bo, f"MSX-02: {a} at {ao:#x}+{al:#x} overlaps {b} at {bo:#x}"
    # reset state and read-back
    for v in range(N):
        _, _, vc = await mx.read_entry(v)
        assert vc == 1, f"entry {v}: Vector Control {vc:#x} after reset (must be masked)"
    assert await mx.pba() == 0
    pats = {v: (0x0000_00AB_0000_0000 * (v % 2) | (0xFEE0_0000 + 0x10 * v), 0xC0DE_0000 | v)
            for v in range(N)}
    for v, (a, d) in pats.items():
        await mx.write_entry(v, a, d, masked=(v % 2 == 0))
    for v, (a, d) in pats.items():
        assert await mx.read_entry(v) == (a, d, int(v % 2 == 0)), f"entry {v} read-back"
    # a write of all ones to Message Control changes only Enable and Function Mask
    await drv.cfg_write(mx.cap + 2, 2, 0xFFFF, "msix control")
    assert await mx.control() == 0xC000 | (N - 1)
    await drv.cfg_write(mx.cap + 2, 2, 0, "msix control")
    assert await mx.control() == N - 1
    env.check()


# ============================================================================ mapping
@cocotb.test()
async def any_event_any_vector_test(dut):
    """MSX-04, MSX-06, MSX-08, DRV-15: the configuration event and every queue's event can be
    mapped to every table entry: the vector reads back as written and one event sends exactly
    one MSI-X write with that entry's address and data (3-DW header for a 32-bit address, 4-DW
    for a 64-bit one), delivered to the root complex's MSI region."""
    env, _ = await start(dut)
    drv = env.drv
    await program_all(env)
    for ev in [("c",)] + [("q", q) for q in range(NQ)]:
        for v in range(N):
            if ev[0] == "c":
                got = await drv.config_vector(v)
            else:
                got = await drv.queue_vector(ev[1], v)
            assert got == v, f"MSX-06: {ev} vector {v} reads back {got:#x}"
            await one_event(env, ev, entries=[v], what=f"MSX-04 {ev} -> {v}")
    assert {w.fmt64 for w in env.writes} == ({False, True} if N > 1 else {False})
    env.check()


@cocotb.test()
async def no_vector_test(dut):
    """MSX-05, MSX-06, MSX-09, MSX-10, MSX-11, DRV-15: writing NO_VECTOR unmaps an event and
    reads back NO_VECTOR; a vector past the table (Table Size + 1, 0x7FF, 0x800, 0xFFFE,
    0x8000) is refused by reading back NO_VECTOR; with MSI-X enabled an unmapped queue or
    configuration event sends nothing at all: no MSI-X write, no INTx message, no pending bit,
    and the queue's ISR bit stays clear."""
    env, _ = await start(dut)
    drv, mx = env.drv, env.msix
    await program_all(env)
    for bad in (NO_VECTOR, N, N + 1, 0x7FF, 0x800, 0xFFFE, 0x8000):
        await drv.config_vector(0)
        got = await drv.config_vector(bad)
        assert got == NO_VECTOR, f"MSX-09: config vector {bad:#x} reads {got:#x}"
        for q in range(NQ):
            await drv.queue_vector(q, N - 1)
            got = await drv.queue_vector(q, bad)
            assert got == NO_VECTOR, f"MSX-09: queue {q} vector {bad:#x} reads {got:#x}"
    await env.flush()
    m = env.mark()
    await env.irq(*[("q", q) for q in range(NQ)], ("c",))
    await env.be.dcfg_write(0, 0x1234_5678)
    await env.expect_quiet(m, what="MSX-10/MSX-11")
    assert await mx.pba() == 0
    assert await isr_read(env) & 1 == 0, "queue ISR bit with MSI-X enabled"
    env.check()


# ============================================================================ masking
@cocotb.test()
async def masking_test(dut):
    """MSX-D1: an event for a masked vector sends nothing and sets its PBA bit (repeated events
    coalesce); unmasking sends exactly one write and clears the bit.  Function Mask: events on
    several vectors wait, one write each when it clears.  Bus Master Enable clear: nothing goes
    upstream, the vectors stay pending, setting it sends each once.  A masked, pending entry can
    be reprogrammed; the message on unmask uses its new address and data."""
    env, vec = await start(dut)
    mx = env.msix
    v0, v1, vc = vec[0], vec[min(1, NQ - 1)], vec["config"]
    # per-vector mask
    await mx.mask(v0, True)
    await env.flush()
    m = env.mark()
    await env.irq(("q", 0), ("q", 0))
    await env.irq(("q", 0))
    await env.expect_quiet(m, what="masked vector")
    assert await mx.pba() == 1 << v0, "PBA after events on a masked vector"
    # a masked entry may be reprogrammed: the pending message goes to the new address/data
    new = mx.alloc(1, wide=True)[0]
    await mx.write_entry(v0, new.addr, new.data, masked=True)
    assert await mx.read_entry(v0) == (new.addr, new.data, 1)
    assert await mx.pba() == 1 << v0
    await mx.mask(v0, False)
    await env.wait_writes(m[0] + 1)
    await env.settle(60)
    assert env.entries_hit(m[0]) == [v0], f"unmask: {env.entries_hit(m[0])}"
    w = env.writes[m[0]]
    assert (w.addr, w.data, w.fmt64) == (new.addr, new.data, True), f"unmask: {w}"
    assert await mx.pba() == 0
    # Function Mask
    await mx.set_control(fmask=True)
    m = env.mark()
    await env.irq(("q", 0), ("c",), ("q", NQ - 1), ("q", 0))
    await env.expect_quiet(m, what="Function Mask")
    want = sorted({v0, vc, vec[NQ - 1]})
    assert await mx.pba() == sum(1 << v for v in want)
    await mx.set_control(fmask=False)
    await env.wait_writes(m[0] + len(want))
    await env.settle(60)
    assert sorted(env.entries_hit(m[0])) == want, f"Function Mask cleared: {env.entries_hit(m[0])}"
    assert await mx.pba() == 0
    # Bus Master Enable
    await set_command(env, clear_bits=1 << 2)
    m = env.mark()
    await env.irq(("q", 0), ("c",))
    if v1 != v0:
        await env.irq(("q", 1))
    await env.expect_quiet(m, what="Bus Master Enable clear")
    want = sorted({v0, vc, v1})
    assert await mx.pba() == sum(1 << v for v in want)
    await set_command(env, set_bits=1 << 2)
    await env.wait_writes(m[0] + len(want))
    await env.settle(60)
    assert sorted(env.entries_hit(m[0])) == want, f"BME set: {env.entries_hit(m[0])}"
    assert await mx.pba() == 0
    env.check()


# ============================================================================ INTx
@cocotb.test()
async def intx_test(dut):
    """MSX-D2, ISR-02, ISR-03, ISR-04, ISR-05, ISR-D1, ISR-D2: with MSI-X disabled (vectors
    mapped, entries unmasked: ignored) a queue event sets ISR bit 0 and sends Assert_INTA (local
    message from the function's ID), PCI Status.Interrupt Status is set; the ISR read returns the
    bit, clears it and sends Deassert_INTA.  A configuration event sets bit 1 first.  Two events
    before the read: one Assert, ISR 0x3.  ISR writes are ignored.  Interrupt Disable deasserts and
    blocks Assert while Interrupt Status still shows the ISR; clearing it asserts again.  An ISR
    read through the PCI-cfg window also clears and deasserts.  Bus Master Enable does not gate
    INTx messages.  Enabling MSI-X deasserts; then MSI-X writes, no INTx."""
    env, vec = await start(dut)
    mx = env.msix
    await mx.set_control(enable=False)
    await env.flush()
    w0 = len(env.writes)
    assert await int_status(env) == 0
    # ISR-03
    await env.irq(("q", 0))
    assert await env.wait_intx(1) == ["assert"]
    assert await int_status(env) == 1, "ISR-04: Status.Interrupt Status with ISR bit 0 set"
    assert await isr_read(env) == 0x1, "ISR-03: bit 0 with the Assert"
    assert await env.wait_intx(2) == ["assert", "deassert"], "ISR-05: no Deassert after the read"
    assert await int_status(env) == 0
    assert await isr_read(env) == 0, "ISR-05: second read"
    # ISR-02
    await env.irq(("c",))
    await env.wait_intx(3)
    assert await isr_read(env) == 0x2, "ISR-02: bit 1 with the Assert"
    await env.wait_intx(4)
    # ISR-D2: both causes, one interrupt
    await env.irq(("q", NQ - 1), ("c",))
    await env.settle(60)
    assert env.intx()[4:] == ["assert"], f"ISR-D2: {env.intx()[4:]}"
    # ISR-D1: writes ignored
    await env.drv.write(CfgType.ISR, 0, 1, 0x00)
    await env.drv.write(CfgType.ISR, 0, 1, 0xFF)
    await env.settle(40)
    assert env.intx()[5:] == [], "an ISR write changed the interrupt line"
    assert await isr_read(env) == 0x3, "ISR-D2/ISR-D1: ISR after two causes and writes"
    await env.wait_intx(6)
    # ISR-04: Interrupt Disable
    await env.irq(("q", 0))
    await env.wait_intx(7)
    await set_command(env, set_bits=1 << 10)
    assert (await env.wait_intx(8))[-1] == "deassert", "ISR-04: Interrupt Disable must deassert"
    assert await int_status(env) == 1, "ISR-04: Interrupt Status must still show the ISR"
    await env.irq(("c",))
    await env.settle(60)
    assert len(env.intx()) == 8, "ISR-04: Assert while Interrupt Disable is set"
    await set_command(env, clear_bits=1 << 10)
    assert (await env.wait_intx(9))[-1] == "assert"
    # ISR-05 through the PCI-cfg window
    isr = REG["isr"]["offset"]
    await env.pcc_setup(BAR, isr, 1)
    assert await env.pcc_read() & 0xFF == 0x3, "ISR-05: window read"
    assert (await env.wait_intx(10))[-1] == "deassert", "ISR-05: window read must deassert"
    assert await isr_read(env) == 0
    # Bus Master Enable does not gate INTx messages
    await set_command(env, clear_bits=1 << 2)
    await env.irq(("q", 0))
    assert (await env.wait_intx(11))[-1] == "assert", "INTx Assert with Bus Master Enable clear"
    await set_command(env, set_bits=1 << 2)
    # MSX-D2: enabling MSI-X deasserts; then MSI-X
    assert env.writes[w0:] == [], "MSX-D2: MSI-X write while MSI-X is disabled"
    assert await mx.pba() == 0, "MSX-D2: vectors pending from events while MSI-X was disabled"
    await mx.set_control(enable=True)
    assert (await env.wait_intx(12))[-1] == "deassert", "enabling MSI-X must deassert INTx"
    assert await int_status(env) == 0, "Interrupt Status with MSI-X enabled"
    await env.settle(60)
    assert env.writes[w0:] == [], "MSX-D2: events from the INTx period sent as MSI-X writes"
    await one_event(env, ("q", 0), entries=[vec[0]], what="MSI-X after INTx")
    assert len(env.intx()) == 12
    env.check()


# ============================================================================ config changes
@cocotb.test()
async def config_change_test(dut):
    """STS-03, STS-D2, ISR-02, MSX-11, CC-05: a device-configuration change by the back-end sends
    one MSI-X write on the configuration vector once DRIVER_OK is set (none during
    initialisation), sets ISR bit 1 and changes config_generation; with config_msix_vector
    NO_VECTOR nothing is sent; with MSI-X disabled it asserts INTx with ISR bit 1; setting
    DEVICE_NEEDS_RESET after DRIVER_OK sends one configuration notification."""
    env = IrqTB(dut)
    drv = await env.start()
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE)
    await drv.add_status(Status.DRIVER)
    await drv.finalize_features()
    _, vec = await linux_find_vqs(env, strategy="msix_per_vq")
    for q in range(NQ):
        await drv.enable_vq(q)
    await env.flush()
    m = env.mark()
    await env.be.dcfg_write(0, 0x1111_1111)
    await env.expect_quiet(m, what="STS-D2: configuration change before DRIVER_OK")
    assert await isr_read(env) == 0
    await drv.add_status(Status.DRIVER_OK)
    await env.flush()
    gen = await drv.common_read("config_generation")
    m = env.mark()
    await env.be.dcfg_write(0, 0x2222_2222)
    await env.wait_writes(m[0] + 1)
    await env.settle(40)
    assert env.entries_hit(m[0]) == [vec["config"]], f"STS-D2: {env.entries_hit(m[0])}"
    assert await isr_read(env) == 0x2, "ISR-02: bit 1 after the configuration notification"
    assert await drv.common_read("config_generation") != gen, "CC-05: generation unchanged"
    # MSX-11
    assert await drv.config_vector(NO_VECTOR) == NO_VECTOR
    await env.flush()
    m = env.mark()
    await env.be.dcfg_write(1, 0x3333_3333)
    await env.irq(("c",))
    await env.expect_quiet(m, what="MSX-11")
    assert await env.msix.pba() == 0
    # MSI-X disabled: INTx with ISR bit 1
    await isr_read(env)
    assert await drv.config_vector(vec["config"]) == vec["config"]
    await env.msix.set_control(enable=False)
    await env.flush()
    await env.be.dcfg_write(0, 0x4444_4444)
    assert await env.wait_intx(1) == ["assert"]
    assert await isr_read(env) == 0x2
    await env.wait_intx(2)
    # STS-03
    await env.msix.set_control(enable=True)
    await env.flush()
    m = env.mark()
    await env.be.needs_reset()
    await env.wait_writes(m[0] + 1)
    await env.settle(40)
    assert env.entries_hit(m[0]) == [vec["config"]], f"STS-03: {env.entries_hit(m[0])}"
    assert await drv.get_status() & Status.DEVICE_NEEDS_RESET
    env.check()


# ============================================================================ Linux strategies
async def linux_runtime(env, strategy, vec):
    """Run a little as Linux does: every queue is kicked, the back-end uses a buffer and requests
    its interrupt; a configuration change; then vp_del_vqs (vectors back to NO_VECTOR, read
    back), the reset and MSI-X disabled."""
    drv, be = env.drv, env.be
    for q, vq in drv.vqs.items():
        n = len(be.doorbells)
        await drv.kick(vq, 1)
        await be.wait_doorbells(n + 1)
        if strategy == "intx":
            k = len(env.bridge.messages)
            await env.irq(("q", q))
            assert (await env.wait_intx(k + 1))[-1] == "assert", f"queue {q}: no Assert_INTA"
            isr = await isr_read(env)
            assert isr == 0x1, f"vp_interrupt: ISR {isr:#x} for queue {q}"
            assert (await env.wait_intx(k + 2))[-1] == "deassert"
        else:
            await one_event(env, ("q", q), entries=[vec[q]], what=f"{strategy} queue {q}")
    if strategy == "msix_shared" and NQ > 1:
        # every queue on vector 1: a burst signals at least once and at most once per request
        m = env.mark()
        await env.irq(*[("q", q) for q in range(NQ)])
        await env.wait_writes(m[0] + 1)
        await env.settle(60)
        hits = env.entries_hit(m[0])
        assert 1 <= len(hits) <= NQ and set(hits) == {1}, f"shared vector burst: {hits}"
    m = env.mark()
    await env.be.dcfg_write(0, 0xA5A5_0000 | NQ)
    if strategy == "intx":
        assert (await env.wait_intx(m[1] + 1))[-1] == "assert"
        assert await isr_read(env) == 0x2, "vp_interrupt: configuration change"
        await env.wait_intx(m[1] + 2)
    else:
        await env.wait_writes(m[0] + 1)
        await env.settle(40)
        assert env.entries_hit(m[0]) == [vec["config"]]
    # vp_del_vqs / vp_reset / pci_free_irq_vectors
    for q in drv.vqs:
        assert await drv.queue_vector(q, NO_VECTOR) == NO_VECTOR
    assert await drv.config_vector(NO_VECTOR) == NO_VECTOR
    await drv.reset()
    await env.msix.set_control(enable=False)
    await env.settle(40)
    assert env.intx().count("assert") == env.intx().count("deassert"), "INTx left asserted"
    env.check()


@cocotb.test()
async def linux_msix_per_queue_test(dut):
    """MSX-04, MSX-08, DRV-15 (spec 3.1.B.7 a): Linux's first strategy: MSI-X enabled before the
    vectors are written, one vector for configuration changes (entry 0) and one per queue, all
    accepted (read back); each queue's used-buffer interrupt and the configuration change arrive
    on their own vector; teardown unmaps everything."""
    env = IrqTB(dut)
    await env.start()
    strategy, vec = await linux_init(env)
    assert strategy == "msix_per_vq", f"Table Size {N} should fit {NQ} queues + config"
    assert sorted(vec.values()) == list(range(NQ + 1))
    await linux_runtime(env, strategy, vec)


@cocotb.test()
async def linux_msix_shared_test(dut):
    """MSX-04, MSX-08, DRV-15 (spec 3.1.B.7 b): when the host cannot give one vector per queue,
    Linux falls back to two vectors: configuration on entry 0, every queue sharing entry 1;
    both mappings are accepted; each queue's interrupt arrives on entry 1, a burst of all queues
    coalesces (at least one, at most one write per request), configuration on entry 0."""
    env = IrqTB(dut)
    await env.start()
    strategy, vec = await linux_init(env, host_vectors=NQ)
    assert strategy == "msix_shared"
    assert vec["config"] == 0 and {vec[q] for q in range(NQ)} == {1}
    await linux_runtime(env, strategy, vec)


@cocotb.test()
async def linux_intx_test(dut):
    """ISR-03, ISR-05, MSX-D2 (spec 3.1.B.7 c): with MSI-X unavailable Linux uses INTx (the
    function has Interrupt Pin INTA): vectors stay NO_VECTOR; each queue's interrupt is an
    Assert_INTA, vp_interrupt's 8-bit ISR read returns bit 0 (bit 1 for a configuration change)
    and deasserts."""
    env = IrqTB(dut)
    await env.start()
    strategy, vec = await linux_init(env, host_vectors=1)
    assert strategy == "intx"
    assert await env.drv.cfg_read(0x3D, 1) == 1, "Interrupt Pin INTA"
    assert await env.drv.common_read("config_msix_vector") == NO_VECTOR
    await linux_runtime(env, strategy, vec)


# ============================================================================ races
@cocotb.test()
async def mask_race_test(dut):
    """MSX-D1: back-to-back interrupt requests on every queue and the configuration vector while
    the driver masks and unmasks entries and toggles the Function Mask at random: once all is
    unmasked, every vector that had requests has been signalled after its last request, never
    more often than it had requests, and nothing is left pending."""
    env, vec = await start(dut)
    mx = env.msix
    rng = random.Random(cocotb.RANDOM_SEED)
    done = []

    async def storm():
        for _ in range(12):
            evs = [("q", rng.randrange(NQ)) if rng.random() < 0.8 else ("c",)
                   for _ in range(rng.randint(4, 12))]
            await env.irq(*evs)
            await env.cycles(rng.randrange(1, 30))
        done.append(1)

    async def toggler():
        while not done:
            r = rng.random()
            if r < 0.7:
                await mx.mask(rng.randrange(NQ + 1), rng.random() < 0.5)
            else:
                await mx.set_control(fmask=rng.random() < 0.5)
    await env.flush()
    r0 = len(env.requests)
    task = cocotb.start_soon(toggler())
    await storm()
    await task
    await mx.set_control(fmask=False)
    for v in range(NQ + 1):
        await mx.mask(v, False)
    await env.settle(200)
    reqs = env.requests[r0:]
    for v in range(NQ + 1):
        times = [r.time_ns for r in reqs
                 if (vec["config"] if r.config else vec[r.queue]) == v]
        writes = [w.time_ns for w in env.writes if w.entry == v]
        if times:
            assert writes and writes[-1] > times[-1], \
                f"vector {v}: last request at {times[-1]} ns not signalled (writes {writes})"
        assert len(writes) <= len(times), f"vector {v}: {len(writes)} writes, {len(times)} requests"
    env.log.info("mask race: %d requests, %d MSI-X writes, per entry %s", len(reqs),
                 len(env.writes), {v: sum(1 for w in env.writes if w.entry == v)
                                   for v in range(NQ + 1)})
    assert await mx.pba() == 0
    assert len(reqs) > 40
    env.check()


@cocotb.test()
async def remap_in_flight_test(dut):
    """MSX-04, MSX-06: a queue's vector and the configuration vector are remapped while a stream
    of requests for them is in flight: every write goes to the old or the new entry, the last one
    (after the last request) to the new entry, and once the remap has been read back at most
    the old entry's message in flight and its pending one follow (the rest go to the new
    entry)."""
    env, vec = await start(dut)
    drv = env.drv
    await program_all(env)
    for ev, old, new in ((("q", 0), vec[0], N - 1), (("c",), vec["config"], N - 2)):
        await env.flush()
        m = env.mark()

        async def trickle(ev):
            for _ in range(60):
                await env.irq(ev)
                await env.cycles(3)
        task = cocotb.start_soon(trickle(ev))
        await env.cycles(40)
        t0 = get_sim_time("ns")
        got = await (drv.queue_vector(0, new) if ev[0] == "q" else drv.config_vector(new))
        t_rb = get_sim_time("ns")
        assert got == new
        await task
        await env.settle(60)
        reqs = env.requests[m[2]:]
        assert reqs[0].time_ns < t0 and reqs[-1].time_ns > t_rb, "the stream did not span the remap"
        hits = env.entries_hit(m[0])
        assert hits and set(hits) <= {old, new} and hits[-1] == new, f"{ev} remap: {hits}"
        late_old = [w for w in env.writes[m[0]:] if w.entry == old and w.time_ns > t_rb]
        env.log.info("remap %s: %d requests, writes to old %d (after the read-back %d), to new %d",
                     ev, len(reqs), hits.count(old), len(late_old), hits.count(new))
        assert len(late_old) <= 2, f"{ev}: {len(late_old)} writes to the old entry after the remap"
        assert env.writes[-1].time_ns > reqs[-1].time_ns
        await one_event(env, ev, entries=[new], what=f"{ev} after the remap")
    env.check()


# ============================================================================ reset
@cocotb.test()
async def reset_test(dut):
    """MSX-07, STS-05, CC-06: a device reset with vectors mapped, one entry masked with its pending
    bit set and INTx idle: once device_status reads 0, config_msix_vector and every
    queue_msix_vector read NO_VECTOR, the PBA reads 0 and unmasking the entry sends nothing;
    interrupt requests, configuration changes and DEVICE_NEEDS_RESET until re-initialisation
    send no MSI-X write and, with MSI-X disabled, no INTx message.  After re-initialisation
    interrupts work again."""
    env, vec = await start(dut)
    drv, mx = env.drv, env.msix
    await mx.mask(vec[0], True)
    await env.flush()
    await env.irq(("q", 0))
    await env.settle(40)
    assert await mx.pba() == 1 << vec[0]
    m = env.mark()
    await drv.reset()
    assert await drv.common_read("config_msix_vector") == NO_VECTOR, "MSX-07: config vector"
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        assert await drv.common_read("queue_msix_vector") == NO_VECTOR, f"MSX-07: queue {q}"
    assert await mx.pba() == 0, "pending bit survived the device reset"
    await mx.mask(vec[0], False)
    await env.irq(*[("q", q) for q in range(NQ)], ("c",))
    await env.be.dcfg_write(0, 0x0BAD_0BAD)
    await env.expect_quiet(m, what="STS-05 with MSI-X")
    await mx.set_control(enable=False)
    await env.irq(*[("q", q) for q in range(NQ)], ("c",))
    await env.be.needs_reset()
    await env.expect_quiet(m, what="STS-05 with INTx")
    assert await isr_read(env) == 0
    await mx.set_control(enable=True)
    _, vec = await linux_init(env, strategy="msix_per_vq")
    await one_event(env, ("q", NQ - 1), entries=[vec[NQ - 1]], what="after re-initialisation")
    env.check()


@cocotb.test()
async def flr_interrupts_test(dut):
    """MSX-07, ISR-04, DESIGN-5: a Function Level Reset while INTx is asserted sends
    Deassert_INTA (the host's virtual wire must not stay asserted: PCIe 6.6.2), and a pending
    MSI-X vector is dropped: after the FLR the PBA reads 0 and, once the device is usable again,
    nothing is sent for the events from before."""
    env, vec = await start(dut)
    mx = env.msix
    pcie = [c for c in DESC.caps if c["cap_id"] == 0x10][0]["config_offset"]
    await mx.mask(vec[0], True)
    await env.flush()
    await env.irq(("q", 0))
    await env.settle(20)
    assert await mx.pba() == 1 << vec[0]
    await mx.set_control(enable=False)
    await env.irq(("q", 1))
    assert await env.wait_intx(1) == ["assert"]
    m = env.mark()
    devctl = await env.drv.cfg_read(pcie + 8, 2, "devctl")
    await env.cfg_write_dword(pcie + 8, devctl | 1 << 15, fbe=0b0011)      # Initiate FLR
    await env.settle(60)
    assert env.intx() == ["assert", "deassert"], f"after FLR: {env.intx()}"
    # restore the BAR and decode as the driver's reset_done would; MSI-X back on, unmask
    dev = env.dev
    await dev.config_write_dword(0x10 + 4 * BAR, dev.bar_raw[BAR])
    await dev.config_write_dword(0x10 + 4 * (BAR + 1), dev.bar_raw[BAR + 1])
    await set_command(env, set_bits=0x6)
    assert await mx.pba() == 0, "pending bit survived the FLR"
    await mx.set_control(enable=True)
    for v in range(N):
        await mx.mask(v, False)
    await env.expect_quiet((m[0], m[1] + 1, m[2]), what="after FLR")
    env.check()



# ============================================================================ bad accesses
@cocotb.test()
async def msix_table_access_test(dut):
    """MSX-02, MSX-D1: accesses to the MSI-X table other than the aligned DWORD / QWORD ones
    software must use (PCI Local Bus 3.0 6.8.2: their result is undefined) are served byte by
    byte, never corrupting a neighbour: byte and half-word writes and reads of every lane,
    garbage in disabled lanes, an aligned and a misaligned 2-DW write and read (address high +
    data); Vector Control ignores a write without byte 0 and its reserved bits read 0; the space
    after the last entry reads 0 and ignores writes (no aliasing onto entry 0); the event on the
    entry afterwards still goes to its programmed target."""
    env, vec = await start(dut)
    mx = env.msix
    v = vec[0]
    t_off = 16 * v
    orig = await mx.read_entry(v)
    await mx.mask(v, True)
    await env.flush()
    # byte writes of the message data, garbage in the other lanes
    for i, b in enumerate((0x11, 0x22, 0x33, 0x44)):
        await env.wr("msix_table", t_off + 8, (0xA5A5_A5A5 & ~(0xFF << 8 * i)) | b << 8 * i,
                     fbe=1 << i)
    assert await env.rd("msix_table", t_off + 8) == 0x4433_2211, "byte writes of message data"
    for i, b in enumerate((0x11, 0x22, 0x33, 0x44)):
        got = await env.rd("msix_table", t_off + 8, fbe=1 << i)
        assert got >> 8 * i & 0xFF == b, f"byte read of lane {i}: {got:#x}"
    # a half-word write changes exactly its two bytes
    await env.wr("msix_table", t_off + 8, 0xBEEF_0000, fbe=0b1100)
    assert await env.rd("msix_table", t_off + 8) == 0xBEEF_2211, "half-word write"
    # aligned QWORD (address) and misaligned 2-DW (address high + data) writes and reads
    await env.wr_n("msix_table", t_off, [0xFEE0_1000, 0x0000_0012])
    assert await env.rd_n("msix_table", t_off, 2) == [0xFEE0_1000, 0x12], "aligned QWORD"
    await env.wr_n("msix_table", t_off + 4, [0x0000_0034, 0xC0DE_0001])
    assert await env.rd_n("msix_table", t_off + 4, 2) == [0x34, 0xC0DE_0001], "misaligned 2-DW"
    assert await env.rd("msix_table", t_off) == 0xFEE0_1000, "misaligned write hit address low"
    # Vector Control: no byte 0, no change; reserved bits read 0
    await env.wr("msix_table", t_off + 12, 0, fbe=0b1110)
    assert await env.rd("msix_table", t_off + 12) == 1, "Mask cleared by a write without byte 0"
    await env.wr("msix_table", t_off + 12, 0xFFFF_FFFF)
    assert await env.rd("msix_table", t_off + 12) == 1, "Vector Control reserved bits"
    # past the last entry: reads 0, writes go nowhere (entry 0 keeps its contents)
    span = REG["msix_table"]["span"]
    e0 = [await env.rd("msix_table", 4 * k) for k in range(4)]
    for off in (16 * N, 16 * N + 8, span - 4):
        if off < span:
            await env.wr("msix_table", off, 0xFFFF_FFFF)
            assert await env.rd("msix_table", off) == 0, f"table+{off:#x} past the entries"
    assert [await env.rd("msix_table", 4 * k) for k in range(4)] == e0, "a write past the table aliased"
    # restore the entry; its event goes to the programmed target
    await mx.write_entry(v, orig[0], orig[1], masked=bool(orig[2]))
    await env.flush()
    await one_event(env, ("q", 0), entries=[v], what="after the bad accesses")
    env.check()


@cocotb.test()
async def pba_write_test(dut):
    """MSX-D1: the Pending Bit Array is read-only (PCI Local Bus 3.0 6.8.1.3 / 6.8.2.10): DWORD,
    QWORD and byte writes of ones and zeros neither set nor clear a pending bit; the space past
    the PBA reads 0; the pending vector is still sent exactly once when unmasked."""
    env, vec = await start(dut)
    mx = env.msix
    v0 = vec[0]
    await mx.mask(v0, True)
    await env.flush()
    m = env.mark()
    await env.irq(("q", 0))
    await env.expect_quiet(m, what="masked vector")
    want = 1 << v0
    assert await mx.pba() == want
    for dws, fbe in (([0], 0xF), ([0xFFFF_FFFF], 0xF), ([0, 0], 0xF), ([0xFFFF_FFFF] * 2, 0xF),
                     ([0], 0x1), ([0xFFFF_FFFF], 0x2)):
        if len(dws) == 1:
            await env.wr("msix_pba", 0, dws[0], fbe=fbe)
        else:
            await env.wr_n("msix_pba", 0, dws)
        assert await mx.pba() == want, f"PBA write {dws} (BE {fbe:#x}) changed it"
    words = (N + 63) // 64
    if 8 * words < REG["msix_pba"]["span"]:
        await env.wr("msix_pba", 8 * words, 0xFFFF_FFFF)
        assert await env.rd("msix_pba", 8 * words) == 0, "past the PBA"
    await mx.mask(v0, False)
    await env.wait_writes(m[0] + 1)
    await env.settle(60)
    assert env.entries_hit(m[0]) == [v0], f"unmask after PBA writes: {env.entries_hit(m[0])}"
    assert await mx.pba() == 0
    env.check()
