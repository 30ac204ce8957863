"""The vhost-user device side that User-Mode Linux's PCI transport connects to.

vhost-user protocol (QEMU docs/interop/vhost-user.rst) as UML 6.1's ``virtio_uml`` speaks it:
UML is the front-end (client) and connects to our unix socket; we offer VERSION_1 and
PROTOCOL_FEATURES, and the protocol features REPLY_ACK and SLAVE_REQ (without SLAVE_REQ UML's
transport interrupt collides with its timer and the probe fails with -16).  Guest memory comes
as file descriptors in SET_MEM_TABLE and is mapped here; guest physical address = DMA address.

Two split virtqueues (VIRTIO 1.3 2.7): ``vq[0]`` carries the PCI requests of Linux
(``struct virtio_pcidev_msg`` plus data), ``vq[1]`` the buffers Linux posts for device events
(MSI, INTx, PME).  Kicks arrive on eventfds, calls leave on pipes UML gave us.

Nothing here waits: ``poll(timeout)`` handles whatever arrived (control messages, kicks) within
``timeout`` seconds of wall time and returns; the caller (a cocotb coroutine) then takes chains
from ``vq[0]`` with ``pop()`` and answers with ``push()``.
"""
import mmap
import os
import select
import socket
import struct

__all__ = ["VhostUserServer", "Virtqueue", "GuestMemory", "VhostUserError"]

# vhost-user requests (front-end -> device)
GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_LOG_BASE, SET_LOG_FD, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE = 6, 7, 8, 9, 10
GET_VRING_BASE, SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 11, 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE = 15, 16, 17, 18
SET_SLAVE_REQ_FD = 21

FLAG_VERSION = 0x1
FLAG_REPLY = 0x4
FLAG_NEED_REPLY = 0x8
VRING_NOFD = 0x100

F_PROTOCOL_FEATURES = 1 << 30
F_VERSION_1 = 1 << 32
PF_REPLY_ACK = 1 << 3
PF_SLAVE_REQ = 1 << 5

DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4

HEADER = struct.Struct("<III")


class VhostUserError(Exception):
    pass


class GuestMemory:
    """The guest memory regions of SET_MEM_TABLE, mapped; addressed by guest physical address
    (``read``/``write``) or by front-end user address (``ua_to_gpa`` for the ring addresses)."""

    def __init__(self):
        self.regions = []          # (gpa, size, ua, mmap object, offset into it)

    def set_table(self, table, fds):
        self.close()
        for (gpa, size, ua, off), fd in zip(table, fds):
            m = mmap.mmap(fd, off + size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            os.close(fd)
            self.regions.append((gpa, size, ua, m, off))

    def close(self):
        for r in self.regions:
            r[3].close()
        self.regions = []

    def _find(self, gpa, n):
        for base, size, _, m, off in self.regions:
            if base <= gpa and gpa + n <= base + size:
                return m, off + gpa - base
        return None, None

    def contains(self, gpa, n=1):
        return self._find(gpa, n)[0] is not None

    def read(self, gpa, n):
        m, i = self._find(gpa, n)
        if m is None:
            raise VhostUserError(f"guest read of {n} bytes at {gpa:#x} outside shared memory")
        return bytes(m[i:i + n])

    def write(self, gpa, data):
        m, i = self._find(gpa, len(data))
        if m is None:
            raise VhostUserError(f"guest write of {len(data)} bytes at {gpa:#x} outside shared memory")
        m[i:i + len(data)] = data

    def ua_to_gpa(self, ua):
        for base, size, uaddr, _, _ in self.regions:
            if uaddr <= ua < uaddr + size:
                return base + ua - uaddr
        raise VhostUserError(f"user address {ua:#x} is in no memory region")


class Virtqueue:
    """One split virtqueue as the device sees it."""

    def __init__(self, mem, index):
        self.mem = mem
        self.index = index
        self.num = 0
        self.desc = self.avail = self.used = None
        self.last_avail = 0
        self.used_idx = 0
        self.kick_fd = None
        self.call_fd = None
        self.enabled = False

    @property
    def ready(self):
        return self.desc is not None and self.num > 0

    def _desc(self, i):
        return struct.unpack("<QIHH", self.mem.read(self.desc + 16 * i, 16))

    def pending(self):
        if not self.ready:
            return 0
        avail_idx = struct.unpack("<H", self.mem.read(self.avail + 2, 2))[0]
        return (avail_idx - self.last_avail) & 0xFFFF

    def pop(self):
        """The next available chain: ``(head, out_bytes, in_buffers)`` with ``in_buffers`` a
        list of ``(gpa, length)``; None when Linux has posted nothing new."""
        if not self.pending():
            return None
        slot = self.last_avail % self.num
        head = struct.unpack("<H", self.mem.read(self.avail + 4 + 2 * slot, 2))[0]
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        out, ins, i = bytearray(), [], head
        for _ in range(self.num):
            addr, length, flags, nxt = self._desc(i)
            if flags & DESC_F_INDIRECT:
                raise VhostUserError("indirect descriptors were not offered")
            if flags & DESC_F_WRITE:
                ins.append((addr, length))
            else:
                out += self.mem.read(addr, length)
            if not flags & DESC_F_NEXT:
                break
            i = nxt
        return head, bytes(out), ins

    def push(self, head, written):
        """Return chain ``head`` with ``written`` bytes written, then signal the front-end."""
        slot = self.used_idx % self.num
        self.mem.write(self.used + 4 + 8 * slot, struct.pack("<II", head, written))
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self.mem.write(self.used + 2, struct.pack("<H", self.used_idx))
        if self.call_fd is not None:
            os.write(self.call_fd, struct.pack("<Q", 1))

    def write_in(self, ins, data):
        """Scatter ``data`` into the device-writable buffers ``ins``; returns bytes written."""
        done = 0
        for addr, length in ins:
            chunk = data[done:done + length]
            if not chunk:
                break
            self.mem.write(addr, chunk)
            done += len(chunk)
        return done


class VhostUserServer:
    """Listen on ``path`` for one vhost-user front-end with ``num_queues`` virtqueues."""

    def __init__(self, path, num_queues=2, features=F_VERSION_1 | F_PROTOCOL_FEATURES,
                 protocol_features=PF_REPLY_ACK | PF_SLAVE_REQ, log=None):
        self.path = path
        self.features = features
        self.protocol_features = protocol_features
        self.log = log
        self.mem = GuestMemory()
        self.vq = [Virtqueue(self.mem, i) for i in range(num_queues)]
        self.slave_fd = None
        self.conn = None
        self.closed = False            # the front-end hung up (UML exited)
        self.kicked = set()            # queues kicked since the last poll
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)

    def close(self):
        for fd in [self.slave_fd] + [x for q in self.vq for x in (q.kick_fd, q.call_fd)]:
            if fd is not None:
                os.close(fd)
        self.mem.close()
        if self.conn:
            self.conn.close()
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    # -- event loop ----------------------------------------------------------------------------
    def poll(self, timeout):
        """Handle control messages and kicks for up to ``timeout`` seconds (0: only what is
        already there).  Returns True if anything arrived."""
        fds = [self.conn] if self.conn else [self.sock]
        fds += [q.kick_fd for q in self.vq if q.kick_fd is not None]
        r, _, _ = select.select(fds, [], [], timeout)
        for f in r:
            if f is self.sock:
                self.conn, _ = self.sock.accept()
            elif f is self.conn:
                self._handle_message()
            else:
                try:
                    os.read(f, 8)
                except BlockingIOError:
                    pass
                for q in self.vq:
                    if q.kick_fd == f:
                        self.kicked.add(q.index)
        return bool(r)

    def _recv_exact(self, n):
        buf, fds = b"", []
        while len(buf) < n:
            data, anc, _, _ = self.conn.recvmsg(n - len(buf), socket.CMSG_SPACE(8 * 4))
            if not data:
                self.closed = True
                raise EOFError("vhost-user front-end closed the connection")
            buf += data
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += list(struct.unpack(f"<{len(payload) // 4}i",
                                              payload[:len(payload) - len(payload) % 4]))
        return buf, fds

    def _reply(self, req, payload):
        self.conn.sendall(HEADER.pack(req, FLAG_VERSION | FLAG_REPLY, len(payload)) + payload)

    def _handle_message(self):
        try:
            hdr, fds = self._recv_exact(HEADER.size)
        except EOFError:
            self.conn.close()
            self.conn = None
            return
        req, flags, size = HEADER.unpack(hdr)
        payload, more = self._recv_exact(size) if size else (b"", [])
        fds += more
        if self.log:
            self.log(f"vhost-user request {req} size {size} fds {len(fds)}")
        u64 = lambda: struct.unpack_from("<Q", payload)[0]   # noqa: E731
        replied = False
        if req == GET_FEATURES:
            self._reply(req, struct.pack("<Q", self.features))
            replied = True
        elif req == GET_PROTOCOL_FEATURES:
            self._reply(req, struct.pack("<Q", self.protocol_features))
            replied = True
        elif req in (SET_FEATURES, SET_PROTOCOL_FEATURES, SET_OWNER, RESET_OWNER):
            pass
        elif req == SET_MEM_TABLE:
            n = struct.unpack_from("<I", payload)[0]
            table = [struct.unpack_from("<QQQQ", payload, 8 + 32 * i) for i in range(n)]
            self.mem.set_table(table, fds)
        elif req in (SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ENABLE):
            index, num = struct.unpack_from("<II", payload)
            q = self.vq[index]
            if req == SET_VRING_NUM:
                q.num = num
            elif req == SET_VRING_BASE:
                q.last_avail = q.used_idx = num
            else:
                q.enabled = bool(num)
        elif req == SET_VRING_ADDR:
            index, _, desc, used, avail, _ = struct.unpack_from("<IIQQQQ", payload)
            q = self.vq[index]
            q.desc = self.mem.ua_to_gpa(desc)
            q.used = self.mem.ua_to_gpa(used)
            q.avail = self.mem.ua_to_gpa(avail)
        elif req == GET_VRING_BASE:
            index = struct.unpack_from("<I", payload)[0]
            self._reply(req, struct.pack("<II", index, self.vq[index].last_avail))
            replied = True
        elif req in (SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR):
            v = u64()
            q = self.vq[v & 0xFF]
            fd = None if v & VRING_NOFD or not fds else fds[0]
            if req == SET_VRING_KICK:
                if q.kick_fd is not None:
                    os.close(q.kick_fd)
                q.kick_fd = fd
                if fd is not None:
                    os.set_blocking(fd, False)
            elif req == SET_VRING_CALL:
                if q.call_fd is not None:
                    os.close(q.call_fd)
                q.call_fd = fd
            elif fd is not None:
                os.close(fd)
        elif req == SET_SLAVE_REQ_FD:
            self.slave_fd = fds[0] if fds else None
        elif req == GET_QUEUE_NUM:
            self._reply(req, struct.pack("<Q", len(self.vq)))
            replied = True
        else:
            for fd in fds:
                os.close(fd)
            raise VhostUserError(f"vhost-user request {req} is not supported")
        if flags & FLAG_NEED_REPLY and not replied:
            self._reply(req, struct.pack("<Q", 0))
