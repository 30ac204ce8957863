"""The emitted Verilog itself: users simulate it with event-driven simulators, so it must not
contain constant ``always @*`` blocks (Yosys writes one for a constant assigned to part of a
combinational signal; IEEE 1800 never runs it: it once left every completion header empty)."""
import pytest

from virtio_pci.cli import describe, emit
from virtio_pci.params import VirtioPciParams
from sim.lint import _constant_always_blocks

CONFIGS = {
    "default": VirtioPciParams(),
    "w64": VirtioPciParams(data_width=64),
    "w256_m0": VirtioPciParams(data_width=256, notify_off_multiplier=0),
    "external_dcfg": VirtioPciParams(device_cfg_backend="external", msix_vectors=64),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_no_constant_always_blocks(name, tmp_path):
    v, _ = emit(CONFIGS[name], str(tmp_path), "ep")
    assert _constant_always_blocks(v) == []


def test_description_ports_match_verilog(tmp_path):
    """Every port of the JSON description is a port of the Verilog module, same width."""
    p = VirtioPciParams()
    v, _ = emit(p, str(tmp_path), "ep")
    text = open(v).read()
    header = text[text.index("module ep("):text.index(");", text.index("module ep("))]
    for port in describe(p, "ep")["ports"]:
        assert port["name"] in header, port["name"]
        decl = [ln for ln in text.splitlines()
                if ln.strip().startswith(("input", "output")) and ln.strip().rstrip(";").split()[-1] == port["name"]]
        assert decl, port["name"]
        width = 1
        if "[" in decl[0]:
            hi, lo = decl[0][decl[0].index("[") + 1:decl[0].index("]")].split(":")
            width = int(hi) - int(lo) + 1
        assert width == port["width"], port["name"]
