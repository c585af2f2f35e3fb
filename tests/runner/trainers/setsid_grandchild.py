"""Test trainer: starts a grandchild that leaves the trainer's session (setsid) and ignores SIGTERM, writes
its pid to the file argv[1], then trains slowly (argv[2] == "forever") or exits 0 at once ("exit")."""

import json
import subprocess
import sys
import time
from pathlib import Path

GRANDCHILD = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.1)\n"
# The child starts the grandchild in a new session and exits at once: the grandchild is an orphan in a
# session of its own, outside the trainer's process group.
CHILD = ("import subprocess, sys\n"
         "p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], start_new_session=True,\n"
         "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
         "print(p.pid)\n")

pid_text = subprocess.run([sys.executable, "-c", CHILD, GRANDCHILD], capture_output=True, text=True,
                          check=True).stdout.strip()
pid_file = Path(sys.argv[1])
pid_file.with_suffix(".tmp").write_text(pid_text)
pid_file.with_suffix(".tmp").replace(pid_file)
if sys.argv[2] == "exit":
    sys.exit(0)
step = 0
while True:
    step += 1
    print(json.dumps({"step": step, "total_steps": 1000000, "loss": 0.1}), flush=True)
    time.sleep(0.05)
