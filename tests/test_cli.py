"""The one entry point: the GUI path does not load the server's modules, and `serve` keeps its options."""

from __future__ import annotations

import subprocess
import sys


def _run(script: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_parsing_gui_options_does_not_import_the_server():
    out = _run("import sys\n"
               "from training_studio.cli import _build_parser\n"
               "args = _build_parser(['--data-dir', 'x']).parse_args(['--data-dir', 'x'])\n"
               "print(args.data_dir, args.command, 'training_studio.server.config' in sys.modules)\n")
    assert out == ["x", "None", "False"]


def test_serve_still_has_its_options():
    result = subprocess.run([sys.executable, "-m", "training_studio", "serve", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--data-dir" in result.stdout and "--port" in result.stdout and "--token-file" in result.stdout
    top = subprocess.run([sys.executable, "-m", "training_studio", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert top.returncode == 0 and "serve" in top.stdout and "--screenshot" in top.stdout


def test_tab_option_names_the_panels():
    out = _run("from training_studio.cli import _build_parser\n"
               "p = _build_parser(['--tab', 'models'])\n"
               "print(p.parse_args(['--tab', 'models']).tab, p.parse_args([]).tab)\n")
    assert out == ["models", "None"]
