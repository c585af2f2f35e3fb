"""Test trainer: starts a child process (a data loader) that ignores SIGTERM, writes the child's pid
to the file named by argv[1], then trains slowly. Cancelling must kill the child too."""

import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.1)\n"

child = subprocess.Popen([sys.executable, "-c", CHILD])
pid_file = Path(sys.argv[1])
pid_file.with_suffix(".tmp").write_text(str(child.pid))
pid_file.with_suffix(".tmp").replace(pid_file)
step = 0
while True:
    step += 1
    print(json.dumps({"step": step, "total_steps": 1000000, "loss": 0.1}), flush=True)
    time.sleep(0.05)
