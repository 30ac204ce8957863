"""The interrupt part of the stress reference model (tb/models/ref_model.py ``IrqModel``) is strict:
the outcomes the stress scoreboard must reject are rejected (pure Python, no simulator)."""
import pytest

from virtio_pci.params import VirtioPciParams

from tb.models.ref_model import RefModel

VEC = 4


def _model(msix=True, bme=True, driver_ok=True):
    p = VirtioPciParams(msix_vectors=VEC)
    m = RefModel(p.to_dict())
    c = m.cfg
    c.write(c.dword_of("command"), 0x3, 0x0002 | (0x4 if bme else 0))
    if msix:
        c.write(c.dword_of("msix_control"), 0x8, 0x80 << 24)
    for v in range(VEC):
        m.msix_ram[4 * v:4 * v + 3] = [0xFEE0_0000 + 16 * v, 0 if v % 2 else 0x1234, 0x100 + v]
    cc = m.common
    if driver_ok:
        cc.status = 0x0F
        for q, qs in enumerate(cc.queues):
            qs.enabled = True
            qs.vector = q % VEC
    cc.cfg_vec = VEC - 1
    m._irq_update()
    return m


def _unmask(m, v):
    m.mask &= ~(1 << v)
    m._irq_update()


def _mask(m, v):
    m.mask |= 1 << v
    m._irq_update()


def _msg(m, v, data_xor=0):
    a, d = m.entry(v)
    return m.msix_message(a, d ^ data_xor)


def test_deliverable_event_owes_exactly_one_message():
    m = _model()
    _unmask(m, 0)
    assert m.irq_request(0, False) == (True, 0)
    assert m.missing_msix() == [0]
    assert _msg(m, 0) is None
    assert _msg(m, 0) is not None, "a second message for one event must fail"
    assert m.resolve(0) == []


def test_missing_message_fails_at_drained_point():
    m = _model()
    _unmask(m, 1)
    m.irq_request(1, False)
    assert any("missing" in e for e in m.resolve(0))


def test_wrong_data_or_masked_vector_or_bme_off_fail():
    m = _model()
    _unmask(m, 0)
    m.irq_request(0, False)
    assert _msg(m, 0, data_xor=1) is not None, "wrong data accepted"
    m = _model()
    m.irq_request(0, False)                 # vector 0 masked: pending, no message
    assert _msg(m, 0) is not None, "message for a masked vector accepted"
    assert m.resolve(1) == []
    m = _model(bme=False)
    _unmask(m, 0)
    m.irq_request(0, False)
    assert _msg(m, 0) is not None, "message with Bus Master Enable clear accepted"


def test_unmask_of_pending_vector_owes_its_message():
    m = _model()
    m.irq_request(2, False)
    assert m.resolve(1 << 2) == []
    assert any("PBA bit 2" in e for e in _model_after_pending().resolve(0))
    _unmask(m, 2)
    assert m.missing_msix() == [2]
    assert _msg(m, 2) is None
    assert m.resolve(0) == []


def _model_after_pending():
    m = _model()
    m.irq_request(2, False)
    return m


def test_mask_race_allows_sent_or_pending_but_not_lost():
    m = _model()
    _unmask(m, 0)
    m.irq_request(0, False)
    _mask(m, 0)                              # the message may have left before the mask
    assert m.resolve(1) == []                # not sent: pending
    m = _model()
    _unmask(m, 0)
    m.irq_request(0, False)
    _mask(m, 0)
    assert _msg(m, 0) is None                # sent before the mask took effect
    assert m.resolve(0) == []
    m = _model()
    _unmask(m, 0)
    m.irq_request(0, False)
    _mask(m, 0)
    assert any("neither sent nor pending" in e for e in m.resolve(0)), "lost event accepted"


def test_gating_and_vectors():
    m = _model(driver_ok=False)
    assert m.irq_request(0, False) == (False, None)
    m = _model()
    m.common.queues[0].vector = 0xFFFF       # NO_VECTOR
    assert m.irq_request(0, False) == (True, None)
    assert m.irq_request(VEC + 5, False) == (False, None), "queue past num_queues"
    m.common.queues[1].resetting = True
    assert m.irq_request(1, False) == (False, None)


@pytest.mark.parametrize("msix", [False, True])
def test_isr_and_intx(msix):
    m = _model(msix=msix)
    m.irq_request(0, False)
    assert m.isr == (0 if msix else 1)
    m.irq_request(0, True)
    assert m.isr & 2
    if msix:
        assert m.intx_message(True) is not None, "INTx with MSI-X enabled accepted"
        return
    assert m.intx_message(False) is not None, "Deassert while deasserted accepted"
    m = _model(msix=False)
    m.irq_request(0, False)
    assert m.intx_message(True) is None
    assert m.intx_message(False) is not None, "Deassert without a change accepted"
    m = _model(msix=False)
    m.irq_request(0, False)
    assert any("INTx" in e for e in m.resolve(None)), "missing Assert accepted"


def test_event_after_message_started_repends_vector():
    """MSX-D1: two events on a deliverable vector, the first message covering only the
    first (it had started): the PBA shows the vector pending again at the drained point.  That is
    allowed while a message may still come (issue 11 item 5: 1025 events on 64 vectors at start-up),
    the vector stays owed, and the message must come before the next drained point, or it fails;
    a third message is never allowed."""
    m = _model()
    _unmask(m, 0)
    m.irq_request(0, False)
    m.irq_request(0, False)                   # arrives after the first message started
    assert _msg(m, 0) is None
    assert m.resolve(1) == [], "re-pended vector refused"
    assert m.missing_msix() == [0], "the second message is still owed"
    assert _msg(m, 0) is None
    assert m.resolve(0) == []
    assert _msg(m, 0) is not None, "a third message for two events"
    # the same, but the owed message never comes: the next drained point fails
    m = _model()
    _unmask(m, 1)
    m.irq_request(1, False)
    m.irq_request(1, False)
    assert _msg(m, 1) is None
    assert m.resolve(1 << 1) == []
    errs = m.resolve(1 << 1)
    assert any("vector 1 missing" in e for e in errs), errs
    # with every event answered, a set PBA bit of a deliverable vector still fails
    m = _model()
    _unmask(m, 2)
    m.irq_request(2, False)
    assert _msg(m, 2) is None
    assert any("PBA bit 2 set" in e for e in m.resolve(1 << 2))


def test_d3hot_gates_delivery_from_pm_rules():
    """PCI-01, MSX-D1: the model's power states come from the PM rules: PowerState 1 and 2 are
    discarded (PMC advertises no D1/D2), D3hot makes no vector deliverable and memory requests
    unserved, and D0 makes a pending vector owed again (PCI PM 1.2 3.2.4, PCIe 5.3.1.4.1)."""
    m = _model()
    _unmask(m, 0)
    c = m.cfg
    pm = c.fields["pm_csr"]
    for state, want in ((1, 0), (2, 0), (3, 3), (2, 3), (1, 3), (0, 0)):
        c.write(pm.dword, 1 << (pm.bit // 8), state << pm.bit)
        assert c.field("pm_csr") & 3 == want, (state, c.field("pm_csr"))
    c.write(pm.dword, 1 << (pm.bit // 8), 3 << pm.bit)
    m._irq_update()
    assert not m.cfg.d0 and m.deliverable() == 0 and not m.env().mem_enable
    m.irq_request(0, False)
    assert m.missing_msix() == [] and _msg(m, 0) is not None, "MSI-X write in D3hot"
    c.write(pm.dword, 1 << (pm.bit // 8), 0)
    m._irq_update()
    assert m.missing_msix() == [0] and _msg(m, 0) is None
    assert m.resolve(0) == []


def test_repended_message_during_pba_read_is_not_owed_twice():
    """MSX-D1: a vector read as pending again whose owed message arrived while the PBA read was
    in flight is not owed a further message; it is read again (``unresolved``) and then known."""
    m = _model()
    _unmask(m, 0)
    m.irq_request(0, False)
    m.irq_request(0, False)
    assert _msg(m, 0) is None
    before = list(m.irq.rcv)
    assert _msg(m, 0) is None                 # came after the PBA read had found the bit set
    assert m.resolve(1, before) == []
    assert m.irq.unresolved == [0] and m.missing_msix() == []
    assert m.resolve(0, list(m.irq.rcv)) == [] and m.irq.unresolved == []
    assert _msg(m, 0) is not None, "a third message for two events"
