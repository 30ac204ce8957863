"""The Linux co-simulation tests boot UML and take minutes: only `make linux` runs them
(VPCI_LINUX=1), `make test` leaves them out."""
import os

if not os.environ.get("VPCI_LINUX"):
    collect_ignore_glob = ["test_*.py"]
