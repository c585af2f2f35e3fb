"""`serve --executor ray` options (issue 18): checked at start, each refusal one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Runs the real CLI with the ray package made unimportable (as on a machine without the extra).
WITHOUT_RAY = "import sys; sys.modules['ray'] = None; from training_studio.cli import main; sys.exit(main())"


def serve(tmp_path: Path, *args: str, without_ray: bool = False) -> subprocess.CompletedProcess[str]:
    program = [sys.executable, "-c", WITHOUT_RAY] if without_ray else [sys.executable, "-m", "training_studio"]
    return subprocess.run([*program, "serve", "--data-dir", str(tmp_path / "data"), "--port", "0", *args],
                          capture_output=True, text=True, timeout=60)


def test_executor_ray_without_the_ray_package_fails_at_start_saying_how_to_install_it(tmp_path):
    result = serve(tmp_path, "--executor", "ray", "--ray-address", "http://127.0.0.1:8265", "--shared-dir",
                   str(tmp_path), without_ray=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "training-studio serve: --executor ray needs the ray package: pip install 'training-studio[ray]'"]


def test_executor_ray_needs_an_address_and_a_shared_folder_that_exists(tmp_path):
    # Without --shared-dir the server starts (datasets travel with each job: tests/ray/test_ray_datasets.py).
    no_address = serve(tmp_path, "--executor", "ray", "--shared-dir", str(tmp_path))
    assert no_address.returncode == 2 and "--executor ray needs --ray-address" in no_address.stderr
    missing = serve(tmp_path, "--executor", "ray", "--ray-address", "http://127.0.0.1:8265", "--shared-dir",
                    str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "is not an existing folder" in missing.stderr
    for result in (no_address, missing):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_ray_options_without_executor_ray_are_refused(tmp_path):
    result = serve(tmp_path, "--ray-address", "http://127.0.0.1:8265")
    assert result.returncode == 2 and "only apply with --executor ray" in result.stderr
