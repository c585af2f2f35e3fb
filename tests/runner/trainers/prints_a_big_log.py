"""Test trainer: prints about argv[1] MB of log text as fast as it can, then one progress line and exits 0.

The text mixes ASCII, 2-, 3- and 4-byte UTF-8 characters, tqdm-style '\\r' updates, '\\r\\n' line ends and a
few lines longer than 64 KiB, so a reader that splits it anywhere but at a character boundary would show."""

import json
import sys

megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
out = sys.stdout
written, index = 0, 0
while written < megabytes * 1_000_000:
    if index % 997 == 0:
        line = f"a long line {index} " + "é€😀x" * 30_000 + "\n"
    elif index % 101 == 0:
        line = "".join(f"caching {n}/20 ü\r" for n in range(20)) + "\r\n"
    else:
        line = f"line {index}: ß naïve 日本語 🙂 {'ab' * (index % 50)}\n"
    out.write(line)
    written += len(line.encode())
    index += 1
out.write(json.dumps({"step": 1, "total_steps": 1, "loss": 0.5}) + "\n")
out.flush()
