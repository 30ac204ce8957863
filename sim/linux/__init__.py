"""Real Linux in co-simulation: a User-Mode Linux kernel whose UML PCI transport talks to the
endpoint RTL through tb/host/uml_bridge.py (`make linux`)."""
