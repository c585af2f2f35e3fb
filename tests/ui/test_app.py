"""The GUI bootstrap: where it connects, and a whole run of the real program that exits cleanly."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from training_studio.ui.app import resolve_config
from tests.support.processes import pid_alive, stop_server_left_in


def _args(**kwargs) -> argparse.Namespace:
    base = dict(server=None, token=None, data_dir=None, screenshot=None, quit_after=None, verbose=False)
    base.update(kwargs)
    return argparse.Namespace(**base)


def test_remote_server_from_flags_or_environment(tmp_path):
    env = {"TRAINING_STUDIO_SERVER": "http://team:8765/", "TRAINING_STUDIO_TOKEN": "env-token"}
    config = resolve_config(_args(data_dir=str(tmp_path)), env)
    assert (config.server_url, config.token) == ("http://team:8765", "env-token")
    config = resolve_config(_args(server="http://other:1", token="flag-token", data_dir=str(tmp_path)), env)
    assert (config.server_url, config.token) == ("http://other:1", "flag-token")


def test_local_server_by_default_and_env_token_not_used_for_it(tmp_path):
    config = resolve_config(_args(), {"TRAINING_STUDIO_TOKEN": "stray", "TRAINING_STUDIO_DATA_DIR": str(tmp_path)})
    assert config.server_url is None and config.token is None and config.data_dir == tmp_path


def test_a_whole_run_starts_the_local_server_exits_cleanly_and_leaves_it_running(tmp_path):
    data_dir = tmp_path / "data"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("TRAINING_STUDIO_TOKEN", None)
    env.pop("TRAINING_STUDIO_SERVER", None)
    result = subprocess.run([sys.executable, "-m", "training_studio", "--data-dir", str(data_dir),
                             "--quit-after", "4"], env=env, capture_output=True, timeout=90)
    try:
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        assert "Traceback" not in stderr and "Warning" not in stderr and "never awaited" not in stderr, stderr
        info = json.loads((data_dir / "server.json").read_text())
        assert pid_alive(info["pid"])  # the server outlives the window: jobs keep running
        assert Path(f"/proc/{info['pid']}/cmdline").read_bytes().find(info["token"].encode()) == -1
    finally:
        stop_server_left_in(data_dir)


def test_garbage_collection_is_held_only_until_the_first_screen():
    import gc

    from training_studio.ui import app as gui_app

    assert gc.isenabled()
    try:
        gui_app._hold_gc_for_start()
        assert not gc.isenabled()
        gui_app._hold_gc_for_start()  # once
        gui_app._release_gc_after_start()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        gui_app._release_gc_after_start()  # idempotent
        assert gc.isenabled()
        gc.disable()  # someone else's hold is left alone
        gui_app._hold_gc_for_start()
        gui_app._release_gc_after_start()
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


SOURCE_SCAN_PROBE = r"""
import json, linecache, os, sys, tempfile
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from training_studio.ui.app import _skip_pyside_source_scan
_skip_pyside_source_scan()
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QLabel
folder = tempfile.mkdtemp()
with open(os.path.join(folder, "late_module.py"), "w") as source:
    source.write("from PySide6.QtCore import QObject, Signal\n"
                 "class Ping(QObject):\n    pinged = Signal(str)\n"
                 "def label_text(label):\n    label.setText('hello')\n    return label.text()\n")
sys.path.insert(0, folder)
linecache.clearcache()
import late_module
app = QApplication([])
heard = []
ping = late_module.Ping()
ping.pinged.connect(heard.append)
ping.pinged.emit("pong")
print(json.dumps({"sources_read": sorted(linecache.cache), "text": late_module.label_text(QLabel()),
                  "heard": heard, "snake_case_off": hasattr(QLabel, "setText")}))
"""


def test_pyside_no_longer_reads_the_source_of_later_modules_and_qt_still_works():
    """`_skip_pyside_source_scan` (issue 19, first paint): a module imported after PySide6 is not read into
    linecache by PySide6's import hook, and Qt calls, signals and slots from such a module work as before."""
    result = subprocess.run([sys.executable, "-c", SOURCE_SCAN_PROBE], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not [path for path in report["sources_read"] if path.endswith("late_module.py")], report
    assert report == {**report, "text": "hello", "heard": ["pong"], "snake_case_off": True}


def test_without_the_skip_pyside_reads_later_modules_sources():
    """The control for the test above: without `_skip_pyside_source_scan`, the same import fills linecache,
    so the test above can tell the two apart."""
    probe = SOURCE_SCAN_PROBE.replace("_skip_pyside_source_scan()\n", "import PySide6\n", 1)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [path for path in report["sources_read"] if path.endswith("late_module.py")], report
