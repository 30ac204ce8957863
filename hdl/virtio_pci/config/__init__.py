"""PCI configuration space: header, capability chain, BARs, FLR."""
