"""Back-end DMA through the front-end: the requester port (requirement list section 2.18)."""
