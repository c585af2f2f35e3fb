"""Test helpers shared by the whole suite: a real server subprocess (server.py), a scriptable faulty server
(faulty_server.py), jobs over HTTP (jobs.py), process checks (processes.py), a small tmpfs for full-disk
tests (tmpfs.py), and GUI helpers for the dataset tests (gui.py)."""
