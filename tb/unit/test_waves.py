"""The waveform helpers of `make sim` / `make test WAVES=1` (sim/waves.py,
sim/gtkwave_tlp_filter.py): the TLP labels GTKWave shows, and the save file."""
import os

from sim.gtkwave_tlp_filter import Decoder
from sim.waves import filter_config, first_rise, write_gtkw
from tb.tlp.convert import dws_to_beats, pack_beat
from tb.tlp.requests import cfg_req, cpl_tlp, mem_req, msg_req
from virtio_pci.cli import describe
from virtio_pci.params import VirtioPciParams

DESC = describe(VirtioPciParams())
W = 128
BAR = 0xFE00_0000


def values(dws, valid=1):
    """Hex strings of ``{valid, payload}`` per beat, as GTKWave hands them to the filter."""
    pw = W + W // 32 + 2
    return [format(valid << pw | pack_beat(*b, W), "x") for b in dws_to_beats(dws, W)]


def test_labels_name_kind_register_tag_length():
    d = Decoder(filter_config(DESC))
    qsel = BAR + DESC["regions"]["common"]["offset"] + 0x16
    assert d.decode(values(mem_req(qsel & ~3, fbe=0b1100, tag=0x81))[0]) == "MRd32 common.queue_select tag=0x81 len=1"
    notify = BAR + DESC["regions"]["notify"]["offset"] + 4
    assert d.decode(values(mem_req(notify, write=True, data=[1], tag=3))[0]) == \
        "MWr32 notify+0x4 tag=0x03 len=1 data=0x00000001"
    assert d.decode(values(cfg_req(1, write=True, data=6, tag=2))[0]) == \
        "CfgWr0 0x004 command tag=0x02 len=1"
    assert d.decode(values(cpl_tlp(data=[0x1234], tag=0x81))[0]) == "CplD tag=0x81 len=1 bc=4 SC"
    assert d.decode(values(msg_req(0x20))[0]) == "Msg Assert_INTA"


def test_labels_only_on_valid_first_beats():
    d = Decoder(filter_config(DESC))
    beats = values(mem_req(BAR, 8, write=True, tag=5))
    assert len(beats) > 1 and d.decode(beats[0]).startswith("MWr32 common.device_feature_select tag=0x05 len=8")
    assert [d.decode(b) for b in beats[1:]] == [""] * (len(beats) - 1), "continuation beats"
    assert d.decode(values(mem_req(BAR), valid=0)[0]) == "", "payload while valid is low"


def test_save_file_groups_and_start(tmp_path):
    vcd = tmp_path / "w.vcd"
    vcd.write_text("$timescale 1ps $end\n$scope module virtio_pci_ep $end\n"
                   "$var wire 1 ! rx__valid $end\n$upscope $end\n$enddefinitions $end\n"
                   "#0\n0!\n#400000\n1!\n#404000\n0!\n")
    assert first_rise(str(vcd), "rx__valid") == (400000, 1e-12)
    text = open(write_gtkw(str(vcd), str(tmp_path / "w.gtkw"), DESC)).read()
    assert "[timestart] 380000" in text, "opens just before the first request"
    for title in ("link", "back-end streams", "interrupts", "resets and handshakes"):
        assert f"-{title}" in text
    assert text.count("@800200") == text.count("@1000200") >= 4, "groups open and close"
    assert "#{rx_tlp} virtio_pci_ep.rx__valid virtio_pci_ep.rx__payload" in text
    assert os.access(tmp_path / "tlp_filter", os.X_OK)
