"""What the virtio-rng device (hdl/virtio_pci/devices/rng.py) must put in the driver's buffers:
the byte stream of its simulation entropy source (devices/entropy.py), buffer by buffer."""

__all__ = ["lfsr_bytes"]


def lfsr_bytes(width, nbytes_per_buffer):
    """The bytes the simulation entropy source (devices/entropy.py, xorshift64 lanes) puts in
    consecutive writable buffers of the given lengths: one W-bit word per beat, the last beat of a
    buffer carrying its rest (the remaining bytes of that word are dropped)."""
    from virtio_pci.devices.entropy import SEEDS, xorshift64
    lanes = list(SEEDS[:width // 64])
    bpb = width // 8
    out = []
    for n in nbytes_per_buffer:
        buf = b""
        for k in range(max(1, -(-n // bpb))):
            word = b"".join(x.to_bytes(8, "little") for x in lanes)
            buf += word[:min(bpb, n - k * bpb)]
            lanes = [xorshift64(x) for x in lanes]
        out.append(buf)
    return out
