"""The bridge between User-Mode Linux's PCI transport and the endpoint RTL (`make linux`).

One job: UML's ``virtio_pcidev`` messages (include/uapi/linux/virtio_pcidev.h, carried by
vhost-user, ``tb/host/vhost_user.py``) on one side, TLPs on the RTL's ``rx``/``tx`` streams on
the other.  The RTL answers every read; nothing is answered from a copy here.

* CFG_READ / CFG_WRITE (config offset, 1/2/4 bytes) -> CfgRd0 / CfgWr0 to 00:<slot>.0 (UML puts
  the first device in slot 0), byte enables from offset and size.  Linux treats config writes
  as posted; the bridge still waits for the CfgWr0's completion before the next request, so
  the RTL sees Linux's accesses in order and one at a time.
* MMIO_READ / MMIO_WRITE / MMIO_MEMSET (BAR index, offset) -> MRd / MWr at the address Linux
  assigned to that BAR.  The bridge learns it from the RTL: after every config write that
  touches the BAR registers it reads them back with its own CfgRd0s (marked ``bridge`` in the
  transcript).  Linux 6.1 sends memset_io as op CFG_WRITE with ``bar`` set and one data byte:
  recognised by its data being shorter than its size.
* TLPs from the RTL: MWr to UML's MSI address (0xa0000) -> MSI event with the written data;
  Assert_INTx / Deassert_INTx -> INT events (UML treats INT as an edge, so the event is sent
  again every ``INTX_RESEND_S`` while the line stays asserted); MRd / MWr elsewhere are the
  RTL's own DMA, served from the guest memory vhost-user shares (CplD split at 64-byte RCB
  boundaries; UR when the address is not shared memory).
* A request the RTL does not answer within ``CPL_TIMEOUT_CYCLES`` is answered with all-ones
  (what a root complex returns) and recorded in ``errors``: the runner fails the test on it.

Every TLP in both directions is written to the transcript (``transcript``: a file object).
"""
import os
import struct
import time

import cocotb
from cocotb.queue import Queue
from cocotb.triggers import Event, RisingEdge, Timer, with_timeout
from cocotb.utils import get_sim_time

from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId

from ..tlp.convert import beats_to_dws, dws_to_beats, dws_to_tlp, pack_beat, tlp_to_dws, unpack_beat

__all__ = ["PcidevBridge", "Op", "MSI_ADDRESS"]


class Op:
    """``enum virtio_pcidev_ops``"""
    CFG_READ, CFG_WRITE, MMIO_READ, MMIO_WRITE, MMIO_MEMSET, INT, MSI, PME = range(1, 9)


MSG = struct.Struct("<BBHIQ")     # struct virtio_pcidev_msg: op, bar, reserved, size, addr
MSI_ADDRESS = 0xa0000             # arch/um/drivers/virt-pci.c, um_pci_compose_msi_msg()
CPL_TIMEOUT_CYCLES = 20000
INTX_RESEND_S = 0.005
RCB = 64
MAX_READ = 128                    # bytes per MRd the bridge sends (Max_Read_Request_Size)
BAR_REGS = range(0x10, 0x28)
MSG_ASSERT_INTA, MSG_DEASSERT_INTA = 0x20, 0x24


def _name(tlp):
    try:
        return TlpType(tlp.fmt_type).name
    except ValueError:
        return f"{tlp.fmt_type:#04x}"


class _Link:
    """The RTL's ``rx``/``tx`` TLP streams at full speed (``amaranth.lib.stream`` rules)."""

    def __init__(self, dut, width, on_tlp):
        self.dut, self.clk, self.width, self.on_tlp = dut, dut.clk, width, on_tlp
        self.queue = Queue()
        self.busy = False
        dut.rx__valid.value = 0
        dut.tx__ready.value = 1
        cocotb.start_soon(self._rx())
        cocotb.start_soon(self._tx())

    def send(self, dws):
        self.queue.put_nowait(list(dws))

    async def _rx(self):
        valid, payload, ready = self.dut.rx__valid, self.dut.rx__payload, self.dut.rx__ready
        while True:
            if self.queue.empty():
                valid.value = 0
                self.busy = False
                dws = await self.queue.get()
                self.busy = True
                await RisingEdge(self.clk)
            else:
                dws = self.queue.get_nowait()
            for beat in dws_to_beats(dws, self.width):
                payload.value = pack_beat(*beat, self.width)
                valid.value = 1
                await RisingEdge(self.clk)
                while not ready.value:
                    await RisingEdge(self.clk)

    async def _tx(self):
        valid, payload = self.dut.tx__valid, self.dut.tx__payload
        beats = []
        while True:
            await RisingEdge(self.clk)
            if not valid.value:
                await RisingEdge(valid)
                continue
            beat = unpack_beat(int(payload.value), self.width)
            beats.append(beat)
            if beat[3]:
                self.on_tlp(beats_to_dws(beats, self.width))
                beats = []


class PcidevBridge:
    """``dut``: the endpoint; ``desc``: its JSON description (dict); ``server``: a connected or
    listening ``VhostUserServer``; ``transcript``: text file for the TLP log (or None)."""

    def __init__(self, dut, desc, server, transcript=None, slot=0):
        self.dut = dut
        self.desc = desc
        self.server = server
        self.mem = server.mem
        self.transcript = transcript
        self.dev_id = PcieId(0, slot, 0)
        self.rc_id = PcieId(0, 0x1F, 0)     # requester ID of the bridge (the "root complex")
        width = desc["ports"][[p["name"] for p in desc["ports"]].index("rx__payload")]
        width = width["fields"]["data"][1] + 1
        self.link = _Link(dut, width, self._from_rtl)
        self.bar_addr = {}
        self._tag = 0
        self._waiting = {}                  # tag -> (Queue of completions)
        self.events = []                    # device -> Linux event messages not yet delivered
        self.intx = {}                      # pin -> asserted
        self._intx_sent = 0.0
        self.errors = []
        self.stats = {"np": 0, "np_wall_s": 0.0, "posted": 0, "msi": 0, "int": 0,
                      "dma_read_bytes": 0, "dma_write_bytes": 0, "tlps_rx": 0, "tlps_tx": 0}
        self.activity = Event()
        self.drop_answer = None             # fault injection: never answer this non-posted request
        self.t0 = time.monotonic()

    # -- transcript ------------------------------------------------------------------------------
    def _log(self, direction, tlp, note=""):
        if self.transcript is None:
            return
        s = f"{time.monotonic() - self.t0:9.4f}s {get_sim_time('ns'):12.0f}ns {direction} {_name(tlp):13}"
        if tlp.fmt_type in (TlpType.CFG_READ_0, TlpType.CFG_WRITE_0):
            s += f" reg {tlp.address:#05x} be {tlp.first_be:x} tag {tlp.tag}"
        elif tlp.fmt_type in (TlpType.CPL, TlpType.CPL_DATA):
            s += f" {tlp.status.name} tag {tlp.tag} bc {tlp.byte_count} la {tlp.lower_address:#x}"
        else:
            s += f" addr {tlp.address:#x} len {tlp.length} be {tlp.first_be:x}/{tlp.last_be:x}"
            if not tlp.has_data():
                s += f" tag {tlp.tag}"
        if tlp.has_data() and tlp.data:
            s += " data " + bytes(tlp.data[:32]).hex() + ("..." if len(tlp.data) > 32 else "")
        self.transcript.write(s + (f"  ({note})" if note else "") + "\n")

    # -- TLPs to the RTL ----------------------------------------------------------------------------
    def _send(self, tlp, note=""):
        self._log("->", tlp, note)
        self.stats["tlps_rx"] += 1
        self.link.send(tlp_to_dws(tlp))

    def _next_tag(self):
        self._tag = (self._tag + 1) % 256
        return self._tag

    async def _request(self, tlp, note=""):
        """Send a non-posted request and return its completions (None: no answer in time)."""
        tlp.requester_id = self.rc_id
        tlp.tag = self._next_tag()
        q = Queue()
        self._waiting[tlp.tag] = q
        self._send(tlp, note)
        want = tlp.get_be_byte_count() if tlp.fmt_type in (TlpType.MEM_READ, TlpType.MEM_READ_64) else None
        cpls = []
        try:
            while True:
                cpl = await with_timeout(q.get(), CPL_TIMEOUT_CYCLES * 4, "ns")
                cpls.append(cpl)
                if want is None or cpl.status != CplStatus.SC or cpl.fmt_type != TlpType.CPL_DATA:
                    return cpls
                if cpl.byte_count <= cpl.length * 4 - (cpl.lower_address & 3):
                    return cpls
        except cocotb.triggers.SimTimeoutError:
            self.errors.append(f"no completion within {CPL_TIMEOUT_CYCLES} cycles for {tlp!r}")
            return None
        finally:
            del self._waiting[tlp.tag]

    def _cfg(self, write, offset, size, data=0):
        tlp = Tlp()
        tlp.fmt_type = TlpType.CFG_WRITE_0 if write else TlpType.CFG_READ_0
        tlp.completer_id = self.dev_id
        tlp.address = offset & 0xFFC
        tlp.length = 1
        tlp.first_be = ((1 << size) - 1) << (offset & 3) & 0xF
        if write:
            tlp.data = bytearray((data << 8 * (offset & 3) & 0xFFFF_FFFF).to_bytes(4, "little"))
        return tlp

    async def cfg_read(self, offset, size, note=""):
        """Config read of 1, 2 or 4 bytes (not crossing a DW); None when unanswered."""
        cpls = await self._request(self._cfg(False, offset, size), note)
        if not cpls:
            return None
        c = cpls[0]
        if c.status != CplStatus.SC or not c.data:
            return (1 << 8 * size) - 1
        dw = int.from_bytes(c.data[:4], "little")
        return dw >> 8 * (offset & 3) & ((1 << 8 * size) - 1)

    async def cfg_write(self, offset, size, value, note=""):
        await self._request(self._cfg(True, offset, size, value), note)

    async def _refresh_bars(self):
        bars, i = {}, 0
        while i < 6:
            lo = await self.cfg_read(0x10 + 4 * i, 4, "bridge: BAR read-back")
            if lo is None:
                return
            if lo & 1:                                  # I/O BAR: UML has no I/O space
                i += 1
                continue
            addr = lo & ~0xF
            if lo & 0x6 == 0x4:                         # 64-bit
                hi = await self.cfg_read(0x14 + 4 * i, 4, "bridge: BAR read-back")
                addr |= (hi or 0) << 32
                bars[i] = addr
                i += 2
            else:
                bars[i] = addr
                i += 1
        self.bar_addr = bars

    def _mem_tlp(self, write, addr, nbytes, data=None):
        tlp = Tlp()
        wide = addr + nbytes > 1 << 32
        if write:
            tlp.fmt_type = TlpType.MEM_WRITE_64 if wide else TlpType.MEM_WRITE
            tlp.set_addr_be_data(addr, data)
        else:
            tlp.fmt_type = TlpType.MEM_READ_64 if wide else TlpType.MEM_READ
            tlp.set_addr_be(addr, nbytes)
        return tlp

    async def mmio_read(self, bar, offset, size):
        base = self.bar_addr.get(bar)
        if base is None:
            self.errors.append(f"MMIO read of BAR{bar} which has no address")
            return b"\xff" * size
        out = bytearray()
        addr, end = base + offset, base + offset + size
        while addr < end:
            n = min(end, (addr // MAX_READ + 1) * MAX_READ) - addr
            cpls = await self._request(self._mem_tlp(False, addr, n))
            data = bytearray()
            for c in cpls or []:
                if c.status == CplStatus.SC and c.data:
                    skip = c.lower_address & 3 if not data else 0
                    data += bytes(c.data)[skip:]
            out += bytes(data[:n]).ljust(n, b"\xff")
            addr += n
        return bytes(out)

    def mmio_write(self, bar, offset, data):
        base = self.bar_addr.get(bar)
        if base is None:
            self.errors.append(f"MMIO write to BAR{bar} which has no address")
            return
        addr, end = base + offset, base + offset + len(data)
        while addr < end:
            n = min(end, (addr // 128 + 1) * 128) - addr
            tlp = self._mem_tlp(True, addr, n, data[addr - base - offset:addr - base - offset + n])
            tlp.requester_id = self.rc_id
            self._send(tlp)
            self.stats["posted"] += 1
            addr += n

    # -- one virtio_pcidev request ---------------------------------------------------------------
    async def handle(self, head, out, ins):
        vq = self.server.vq[0]
        op, bar, _, size, addr = MSG.unpack_from(out)
        data = out[MSG.size:]
        t = time.monotonic()
        if op == Op.CFG_READ:
            value = bytearray()
            for k in range(0, size, 4):                 # size 8: two DWs
                n = min(4, size - k)
                v = await self.cfg_read(addr + k, n)
                value += (v if v is not None else (1 << 8 * n) - 1).to_bytes(n, "little")
            if self._np_done(t):
                vq.push(head, vq.write_in(ins, bytes(value)))
        elif op == Op.CFG_WRITE and len(data) >= size:
            vq.push(head, 0)
            for k in range(0, size, 4):
                n = min(4, size - k)
                await self.cfg_write(addr + k, n, int.from_bytes(data[k:k + n], "little"))
            if any(r in BAR_REGS for r in range(addr, addr + size)):
                await self._refresh_bars()
        elif op in (Op.MMIO_MEMSET, Op.CFG_WRITE):     # Linux 6.1 sends memset as CFG_WRITE
            vq.push(head, 0)
            self.mmio_write(bar, addr, bytes(data[:1]) * size)
        elif op == Op.MMIO_READ:
            value = await self.mmio_read(bar, addr, size)
            if self._np_done(t):
                vq.push(head, vq.write_in(ins, value))
        elif op == Op.MMIO_WRITE:
            vq.push(head, 0)
            self.mmio_write(bar, addr, data[:size])
        else:
            self.errors.append(f"unexpected virtio_pcidev op {op}")
            vq.push(head, 0)

    def _np_done(self, t):
        self.stats["np"] += 1
        self.stats["np_wall_s"] += time.monotonic() - t
        if self.stats["np"] == self.drop_answer:
            self.stats["dropped"] = self.stats.get("dropped", 0) + 1
            if self.transcript is not None:
                self.transcript.write(f"answer to non-posted request {self.drop_answer} dropped "
                                      "on purpose (fault injection)\n")
            return False
        return True

    # -- TLPs from the RTL -----------------------------------------------------------------------
    def _from_rtl(self, dws):
        self.stats["tlps_tx"] += 1
        self.activity.set()
        if dws and dws[0] >> 24 & 0x98 == 0x10:        # Msg / MsgD (Type 10rrr): INTx
            code = dws[1] & 0xFF
            if self.transcript is not None:
                self.transcript.write(f"{time.monotonic() - self.t0:9.4f}s "
                                      f"{get_sim_time('ns'):12.0f}ns <- Msg           code "
                                      f"{code:#04x}\n")
            if MSG_ASSERT_INTA <= code < MSG_ASSERT_INTA + 4:
                self.intx[code - MSG_ASSERT_INTA + 1] = True
                self._intx_sent = 0.0
            elif MSG_DEASSERT_INTA <= code < MSG_DEASSERT_INTA + 4:
                self.intx[code - MSG_DEASSERT_INTA + 1] = False
            else:
                self.errors.append(f"unexpected message from the RTL: code {code:#x}")
            return
        try:
            tlp = dws_to_tlp(dws)
        except Exception as exc:                        # noqa: BLE001 - reported, not raised
            self.errors.append(f"unparsable TLP from the RTL ({exc}): {dws}")
            return
        ft = tlp.fmt_type
        if ft in (TlpType.CPL, TlpType.CPL_DATA):
            self._log("<-", tlp)
            q = self._waiting.get(tlp.tag)
            if q is None:
                self.errors.append(f"completion nobody waits for: {tlp!r}")
            else:
                q.put_nowait(tlp)
        elif ft in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            data = bytes(tlp.data)
            first = tlp.get_first_be_offset()
            nbytes = tlp.get_be_byte_count()
            addr = tlp.address + first
            if tlp.address == MSI_ADDRESS:
                self._log("<-", tlp, "MSI")
                self.stats["msi"] += 1
                self.events.append(MSG.pack(Op.MSI, 0, 0, 4, MSI_ADDRESS) + data[:4])
            elif self.mem.contains(addr, nbytes):
                self._log("<-", tlp, "DMA write")
                self.mem.write(addr, data[first:first + nbytes])
                self.stats["dma_write_bytes"] += nbytes
            else:
                self._log("<-", tlp, "DMA write outside guest memory: dropped")
                self.errors.append(f"DMA write outside shared guest memory: {tlp!r}")
        elif ft in (TlpType.MEM_READ, TlpType.MEM_READ_64):
            self._log("<-", tlp, "DMA read")
            self._serve_dma_read(tlp)
        else:
            self._log("<-", tlp)
            self.errors.append(f"unexpected TLP from the RTL: {tlp!r}")

    def _serve_dma_read(self, req):
        first = req.get_first_be_offset()
        nbytes = req.get_be_byte_count()
        addr = req.address + first
        if not self.mem.contains(addr, max(nbytes, 1)):
            cpl = Tlp.create_ur_completion_for_tlp(req, PcieId(0, 0, 0))
            cpl.byte_count = 4
            cpl.lower_address = addr & 0x7F
            self._send(cpl, "DMA read outside guest memory")
            return
        data = self.mem.read(addr, nbytes)
        self.stats["dma_read_bytes"] += nbytes
        pos = 0
        while pos < nbytes or pos == 0:
            a = addr + pos
            n = min(nbytes - pos, (a // RCB + 1) * RCB - a)
            cpl = Tlp.create_completion_data_for_tlp(req, PcieId(0, 0, 0))
            cpl.byte_count = nbytes - pos
            cpl.lower_address = a & 0x7F
            pad = a & 3
            chunk = b"\0" * pad + data[pos:pos + n]
            chunk += b"\0" * (-len(chunk) % 4)
            cpl.set_data(chunk)
            self._send(cpl)
            pos += n
            if n == 0:
                break

    # -- events to Linux ---------------------------------------------------------------------------
    def deliver_events(self):
        now = time.monotonic()
        if any(self.intx.values()) and now - self._intx_sent >= INTX_RESEND_S:
            for pin, on in self.intx.items():
                if on:
                    self.events.append(MSG.pack(Op.INT, 0, 0, 0, pin))
                    self.stats["int"] += 1
            self._intx_sent = now
        vq = self.server.vq[1]
        while self.events and vq.ready and vq.pending():
            head, _, ins = vq.pop()
            vq.push(head, vq.write_in(ins, self.events.pop(0)))

    # -- the loop ------------------------------------------------------------------------------------
    async def serve(self, deadline, stop_file=None, idle_cycles=16, busy_cycles=64):
        """Serve until the front-end hangs up ("closed"), ``stop_file`` exists ("stopped") or
        ``deadline`` (time.monotonic()) passes ("deadline")."""
        clk = self.dut.clk
        quiet = n = 0
        while time.monotonic() < deadline:
            if self.server.closed:
                return "closed"
            n += 1
            if stop_file and n % 64 == 0 and os.path.exists(stop_file):
                return "stopped"
            busy = self.link.busy or bool(self.events) or bool(self._waiting) or quiet < 8
            self.server.poll(0 if busy else 0.001)
            worked = False
            vq = self.server.vq[0]
            while vq.ready and vq.pending():
                head, out, ins = vq.pop()
                await self.handle(head, out, ins)
                worked = True
            self.deliver_events()
            if self.activity.is_set():
                self.activity.clear()
                worked = True
            quiet = 0 if worked else quiet + 1
            await Timer((busy_cycles if busy else idle_cycles) * 4, unit="ns")
            await RisingEdge(clk)
        return "deadline"
