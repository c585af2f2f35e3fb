"""The machine the server runs on (issue 16): a compact status-bar summary and a window listing every GPU."""
