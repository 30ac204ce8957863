"""Complete virtio devices built on the endpoint and the split-virtqueue engine (DESIGN.md 4a)."""
