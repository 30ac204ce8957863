"""Real Linux in co-simulation: a User-Mode Linux kernel whose UML PCI transport talks to the
endpoint RTL through tb/linux/bridge.py (`make linux`)."""
