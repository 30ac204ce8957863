"""The TLPs of the benchmark, as DW lists (tb.tlp.convert convention), for one parameter set.

Requests are encoded by cocotbext-pcie through the unit-test builders (``tb.unit.helpers``), so
the bench drives exactly what the tests drive.  Everything here is plain data: the cycle engine
(``sim.bench.engine``) sends it on rx and the C++ harness reads it from a file.

* ``setup()``: what a driver does before any doorbell or interrupt can be delivered: program the
  memory BAR and the Command register (Memory Space, Bus Master), enable MSI-X, write MSI-X table
  entry 0 (unmasked), take the device through a virtio reset (the back-end model answers
  ``reset_req`` with ``reset_ack``), ACKNOWLEDGE | DRIVER, VERSION_1, FEATURES_OK, enable the first
  queues with MSI-X vector 0, DRIVER_OK.  Doorbells for queues not enabled and before DRIVER_OK
  are dropped by design (virtio/notify.py), and so are interrupts (top.py, common_cfg.py).
* ``latency_probes()``: one request per measured path.
* ``doorbell(i)``, ``mem_read(i)``, ``cfg_read(i)``: the i-th TLP of a back-to-back workload.
"""
from virtio_pci.config.capabilities import CapId, build_config_image
from virtio_pci.params import Feature

from tb.tlp.requests import cfg_req, mem_req
from tb.host.virtio_driver import COMMON

__all__ = ["Stimulus", "BAR", "BUS", "DEV", "MSIX_ADDR", "MSIX_DATA"]

BAR = 0xE000_0000            # below 4 GiB: 3-DW headers, a single-DW write fits one 128-bit beat
BUS, DEV = 0x01, 0x00
MSIX_ADDR = 0xFEE0_0000
MSIX_DATA = 0x0000_4041
ACK, DRIVER, DRIVER_OK, FEATURES_OK = 0x01, 0x02, 0x04, 0x08


class Stimulus:
    def __init__(self, params, *, max_queues=8):
        self.p = params
        self.img = build_config_image(params)
        self.regions = params.regions
        self.queues = list(range(min(params.num_queues, max_queues)))

    # -- addressing -------------------------------------------------------------------------
    def addr(self, region, off=0):
        return BAR + self.regions[region].offset + off

    def field_write(self, name, value, tag=0):
        """A memory write of one common-config field with its natural width and byte enables."""
        off, size = COMMON[name]
        lane = off & 3
        return mem_req(self.addr("common", off & ~3), write=True, fbe=((1 << size) - 1) << lane,
                       data=[(value << (8 * lane)) & 0xFFFF_FFFF], tag=tag)

    def field_read(self, name, tag=0):
        off, size = COMMON[name]
        return mem_req(self.addr("common", off & ~3), fbe=((1 << size) - 1) << (off & 3), tag=tag)

    def cfg_write(self, reg, value, fbe=0xF, tag=0):
        return cfg_req(reg, write=True, data=value, fbe=fbe, bus=BUS, dev=DEV, tag=tag)

    # -- the setup sequence ---------------------------------------------------------------------
    def setup(self):
        """[(name, dws, nonposted)] in order; non-posted requests wait for their completion."""
        p = self.p
        bar_reg = 4 + p.mem_bar
        mx = {c.cap_id: c.offset for c in self.img.caps}[CapId.MSIX]
        out = [
            ("bar_lo", self.cfg_write(bar_reg, BAR, tag=1), True),
            ("bar_hi", self.cfg_write(bar_reg + 1, 0, tag=2), True),
            ("command", self.cfg_write(1, 0x0006, fbe=0x3, tag=3), True),    # MSE | BME
            # MSI-X Message Control byte 3: Enable (bit 7), Function Mask clear
            ("msix_enable", self.cfg_write(mx // 4, 0x80 << 24, fbe=0x8, tag=4), True),
        ]
        tbl = self.regions["msix_table"].offset
        for k, v in enumerate((MSIX_ADDR, 0, MSIX_DATA, 0)):   # entry 0: address, data, unmasked
            out.append((f"msix_entry0_dw{k}", mem_req(BAR + tbl + 4 * k, write=True, data=[v]), False))
        out += [
            ("status_reset", self.field_write("device_status", 0), False),
            ("status_ack_driver", self.field_write("device_status", ACK | DRIVER), False),
            ("driver_feature_select", self.field_write("driver_feature_select", 1), False),
            ("driver_feature", self.field_write("driver_feature",
                                                1 << (Feature.VERSION_1 - 32)), False),
            ("status_features_ok", self.field_write("device_status",
                                                    ACK | DRIVER | FEATURES_OK), False),
            ("status_check_features_ok", self.field_read("device_status", tag=5), True),
        ]
        for q in self.queues:
            out += [
                (f"queue{q}_select", self.field_write("queue_select", q), False),
                (f"queue{q}_vector", self.field_write("queue_msix_vector", 0), False),
                (f"queue{q}_enable", self.field_write("queue_enable", 1), False),
            ]
        out += [
            ("status_driver_ok", self.field_write("device_status",
                                                  ACK | DRIVER | FEATURES_OK | DRIVER_OK), False),
            ("status_check_driver_ok", self.field_read("device_status", tag=6), True),
        ]
        return out

    # -- the measured requests -------------------------------------------------------------
    def latency_probes(self):
        """[(name, kind, dws)]: kind 'cpl' (answered by a completion on tx) or 'doorbell'."""
        probes = [("CfgRd0 -> CplD", "cpl", cfg_req(0, bus=BUS, dev=DEV, tag=0x40))]
        offsets = {"common": COMMON["device_status"][0] & ~3, "isr": 0, "device": 0,
                   "notify": 0, "msix_table": 0, "msix_pba": 0}
        for k, (region, off) in enumerate(offsets.items()):
            probes.append((f"MRd {region} -> CplD", "cpl",
                           mem_req(self.addr(region, off), tag=0x41 + k)))
        probes.append(("doorbell MWr -> doorbell", "doorbell", self.doorbell(0)))
        return probes

    def doorbell_queue(self, i):
        return self.queues[i % len(self.queues)]

    def doorbell(self, i):
        """A 16-bit notify write for queue ``doorbell_queue(i)`` (VIRTIO 4.1.5.2 without
        NOTIFICATION_DATA: the value is the queue index; address = notify + queue_notify_off *
        notify_off_multiplier)."""
        q = self.doorbell_queue(i)
        off = q * self.p.notify_off_multiplier
        lane = off & 3
        return mem_req(self.addr("notify", off & ~3), write=True, fbe=0x3 << lane,
                       data=[(q << (8 * lane)) & 0xFFFF_FFFF])

    def expected_doorbell(self, i):
        """(queue, value) the back-end must see for ``doorbell(i)``."""
        q = self.doorbell_queue(i)
        return q, q

    def mem_read(self, i):
        """A single-DW read of common configuration DW ``i % 16`` (no read side effects)."""
        return mem_req(self.addr("common", 4 * (i % 16)), tag=i & 0xFF)

    def cfg_read(self, i):
        return cfg_req(i % 64, bus=BUS, dev=DEV, tag=i & 0xFF)
