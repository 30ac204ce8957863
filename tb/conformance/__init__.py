"""Requirement traceability (``python -m tb.conformance``): which requirement IDs the test
docstrings cite.  The tool is ``citations.py``; the committed requirement list is
``requirements.txt`` beside it."""
