"""What the benchmark measures, as generator scenarios on ``sim.bench.engine.Engine``.

``program(eng, cfg)`` is the whole run of one simulator process: setup, then the latency probes,
the throughput runs and/or the timed speed run that ``cfg`` asks for; it returns a JSON-able dict.
The same program runs on Verilator (cocotb) and on Amaranth's simulator.
"""
import time

from .engine import BenchError, SINK_MODES
from .stimulus import MSIX_ADDR, MSIX_DATA, Stimulus

__all__ = ["program", "WORKLOADS", "LATENCY_TARGETS", "DEFAULT_CFG"]

CPLD, MWR32 = 0x4A, 0x40        # Fmt/Type of CplD and of a 3-DW-header MWr

#: latency targets in cycles (DESIGN.md section 8), by probe-name prefix
LATENCY_TARGETS = {"CfgRd0": 3, "MRd": 3, "doorbell": 2, "irq": 4}

#: throughput workloads: name -> (Stimulus method, answer kind)
WORKLOADS = {
    "doorbell MWr": ("doorbell", "doorbell"),
    "register MRd": ("mem_read", "cpl"),
    "CfgRd0": ("cfg_read", "cpl"),
}

DEFAULT_CFG = {
    "latency": True,
    "throughput": {"n": 256, "workloads": list(WORKLOADS), "modes": list(SINK_MODES)},
    "speed": None,            # {"n": doorbells} for the timed run
    "seed": 1,
}


def target_of(name):
    for prefix, t in LATENCY_TARGETS.items():
        if name.startswith(prefix):
            return t
    return None


def _cpl_fields(dws):
    return {"fmt_type": dws[0] >> 24, "length": dws[0] & 0x3FF, "status": (dws[1] >> 13) & 7,
            "tag": (dws[2] >> 8) & 0xFF, "data": dws[3] if len(dws) > 3 else None}


def _doorbell_fields(payload):
    v = int(payload)
    return v & 0xFFFF, (v >> 16) & 0xFFFF_FFFF       # Doorbell: queue 15:0, value 47:16


def drain(eng, extra=8):
    yield from eng.wait(lambda: eng.rx_idle, what="rx to drain")
    yield from eng.idle(extra)


def setup(eng, stim):
    for name, dws, nonposted in stim.setup():
        n = len(eng.tx_tlps)
        eng.send(dws)
        if nonposted:
            yield from eng.wait(lambda n=n: len(eng.tx_tlps) > n, limit=200,
                                what=f"completion of {name}")
            c = _cpl_fields(eng.tx_dws(eng.tx_tlps[n]))
            if c["status"] != 0:
                raise BenchError(f"setup step {name}: completion status {c['status']}")
            if name == "status_check_features_ok" and not (c["data"] & 0x08):
                raise BenchError(f"FEATURES_OK refused: device_status {c['data'] & 0xFF:#04x}")
            if name == "status_check_driver_ok" and (c["data"] & 0xFF) != 0x0F:
                raise BenchError(f"DRIVER_OK not reached: device_status {c['data'] & 0xFF:#04x}")
        else:
            yield from drain(eng)
    if eng.resets_acked < 1:
        raise BenchError("the virtio reset was never requested (reset_req)")
    yield from drain(eng, 16)


def latencies(eng, stim):
    """{probe name: cycles}, every sink ready, one request at a time on an idle pipeline."""
    out = {}
    for name, kind, dws in stim.latency_probes():
        yield from drain(eng)
        n_tx, n_db = len(eng.tx_tlps), len(eng.doorbells)
        rec = eng.send(dws)
        if kind == "cpl":
            yield from eng.wait(lambda n=n_tx: len(eng.tx_tlps) > n, limit=100, what=name)
            t = eng.tx_tlps[n_tx]
            c = _cpl_fields(eng.tx_dws(t))
            if c["fmt_type"] != CPLD or c["status"] != 0:
                raise BenchError(f"{name}: answer {c}")
            out[name] = t.first - rec.last
        else:
            yield from eng.wait(lambda n=n_db: len(eng.doorbells) > n, limit=100, what=name)
            if _doorbell_fields(eng.doorbells[n_db][1]) != stim.expected_doorbell(0):
                raise BenchError(f"{name}: doorbell {eng.doorbells[n_db]}")
            out[name] = eng.doorbells[n_db][0] - rec.last
    # interrupt request on the back-end port -> MSI-X write on tx (queue 0 uses vector 0)
    yield from drain(eng)
    n_tx = len(eng.tx_tlps)
    eng.irq(queue=stim.queues[0])
    yield from eng.wait(lambda: eng.irq_edges, limit=10, what="irq accepted")
    yield from eng.wait(lambda: len(eng.tx_tlps) > n_tx, limit=100, what="MSI-X write")
    t = eng.tx_tlps[n_tx]
    dws = eng.tx_dws(t)
    if dws[0] >> 24 != MWR32 or (dws[2] & ~3) != MSIX_ADDR or dws[3] != MSIX_DATA:
        raise BenchError(f"irq: unexpected TLP {[hex(d) for d in dws]}")
    out["irq request -> MSI-X MWr"] = t.first - eng.irq_edges[-1]
    return out


def throughput(eng, stim, workload, mode, n):
    """One back-to-back run of ``n`` TLPs; returns its figures."""
    method, kind = WORKLOADS[workload]
    make = getattr(stim, method)
    yield from drain(eng)
    n_tx, n_db = len(eng.tx_tlps), len(eng.doorbells)
    eng.ready_log = []
    eng.ready_prob = dict(SINK_MODES[mode])
    recs = [eng.send(make(i)) for i in range(n)]
    rx_beats = len(eng.pack(make(0)))
    if kind == "cpl":
        yield from eng.wait(lambda: len(eng.tx_tlps) >= n_tx + n, limit=50 * n, what=workload)
        answers = eng.tx_tlps[n_tx:n_tx + n]
        first, last, last_start = answers[0].first, answers[-1].last, answers[-1].first
        ans_beats = len(answers[0].beats)
        for i, t in enumerate(answers):
            c = _cpl_fields(eng.tx_dws(t))
            if c["fmt_type"] != CPLD or c["status"] != 0 or c["tag"] != i & 0xFF or c["length"] != 1:
                raise BenchError(f"{workload}/{mode}: answer {i} is {c}")
    else:
        yield from eng.wait(lambda: len(eng.doorbells) >= n_db + n, limit=50 * n, what=workload)
        answers = eng.doorbells[n_db:n_db + n]
        first, last = answers[0][0], answers[-1][0]
        last_start = last
        ans_beats = 1
        for i, (_, payload) in enumerate(answers):
            if _doorbell_fields(payload) != stim.expected_doorbell(i):
                raise BenchError(f"{workload}/{mode}: doorbell {i} is {_doorbell_fields(payload)}, "
                                 f"expected {stim.expected_doorbell(i)}")
    sink = "tx" if kind == "cpl" else "doorbell"
    col = 1 if sink == "tx" else 2
    window = [r[col] for r in eng.ready_log if first <= r[0] <= last]
    eng.ready_log = None
    eng.ready_prob = dict(SINK_MODES["ready"])
    yield from drain(eng, 16)
    extra = (len(eng.tx_tlps) - n_tx - n) if kind == "cpl" else (len(eng.doorbells) - n_db - n)
    if extra:
        raise BenchError(f"{workload}/{mode}: {extra} answers more than requests")
    # rates from the first beats of the first and the last TLP: (n - 1) intervals
    rx_cycles = recs[-1].first - recs[0].first
    ans_cycles = last_start - first
    rx_rate, ans_rate = (n - 1) / rx_cycles, (n - 1) / ans_cycles
    ready_frac = sum(window) / len(window)       # while the answers were leaving
    return {
        "tlps": n, "rx_cycles": rx_cycles, "answer_cycles": ans_cycles,
        "rx_rate": round(rx_rate, 4), "answer_rate": round(ans_rate, 4),
        "tlps_per_cycle": round(min(rx_rate, ans_rate), 4),
        "rx_beats_per_tlp": rx_beats, "answer_beats": ans_beats, "sink": sink,
        "sink_ready_fraction": round(ready_frac, 4),
        # the best any pipeline could do: one rx beat per cycle, answers only when the sink is ready
        "bound": round(min(1 / rx_beats, ready_frac / ans_beats), 4),
    }


def speed(eng, stim, n):
    """Timed back-to-back doorbells (every sink ready): cycles and wall/CPU seconds."""
    yield from drain(eng)
    period = [eng.pack(stim.doorbell(i)) for i in range(len(stim.queues))]
    n_db = len(eng.doorbells)
    c0 = eng.cycle
    w0, p0 = time.perf_counter(), time.process_time()
    for i in range(n):
        eng.send(packed=period[i % len(period)])
    yield from eng.wait(lambda: len(eng.doorbells) >= n_db + n, limit=50 * n, what="speed run")
    w1, p1 = time.perf_counter(), time.process_time()
    cycles = eng.cycle - c0
    got = eng.doorbells[n_db:]
    for i in (0, n // 2, n - 1):         # spot checks; the throughput runs check every doorbell
        if _doorbell_fields(got[i][1]) != stim.expected_doorbell(i):
            raise BenchError(f"speed run: doorbell {i} is {_doorbell_fields(got[i][1])}")
    return {"tlps": n, "cycles": cycles, "wall_s": w1 - w0, "cpu_s": p1 - p0,
            "cycles_per_s": cycles / (w1 - w0), "tlps_per_s": n / (w1 - w0),
            "cycles_per_cpu_s": cycles / (p1 - p0), "tlps_per_cpu_s": n / (p1 - p0)}


def program(eng, cfg):
    cfg = {**DEFAULT_CFG, **cfg}
    stim = Stimulus(eng.p)
    res = {"width": eng.w}
    yield from setup(eng, stim)
    res["setup_cycles"] = eng.cycle
    if cfg.get("latency"):
        res["latency"] = yield from latencies(eng, stim)
    tp = cfg.get("throughput")
    if tp:
        res["throughput"] = {}
        for wl in tp["workloads"]:
            for mode in tp["modes"]:
                if mode == "db_bp" and WORKLOADS[wl][1] != "doorbell":
                    continue        # reads never touch the doorbell port
                res["throughput"][f"{wl}|{mode}"] = yield from throughput(eng, stim, wl, mode,
                                                                         tp["n"])
    if cfg.get("speed"):
        res["speed"] = yield from speed(eng, stim, cfg["speed"]["n"])
    return res
