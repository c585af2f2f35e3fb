"""Package placeholder; see the module docstrings inside."""
