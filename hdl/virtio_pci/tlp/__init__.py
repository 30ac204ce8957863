"""Transaction layer: TLP formats, depacketizer, completions, transmit arbitration."""
