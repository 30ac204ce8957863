"""Link layer adapters: clock-domain crossing and vendor PCIe hard-IP interfaces."""
