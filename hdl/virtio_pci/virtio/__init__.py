"""The virtio structures inside the memory BAR (VIRTIO 1.3 section 4.1.4)."""
