"""virtio-pci endpoint front-end in Amaranth HDL (VIRTIO 1.3, section 4.1)."""
