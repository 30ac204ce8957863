"""The split-virtqueue engine (VIRTIO 1.3 section 2.7) and its leaf components."""
