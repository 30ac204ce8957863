"""Interrupt delivery: MSI-X table, PBA and message generation; INTx."""
