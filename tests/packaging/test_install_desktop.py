"""packaging/install-desktop.sh, run for real against a stand-in bundle executable in a temp XDG data home."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "install-desktop.sh"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def run_script(data_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def make_fake_bundle(directory: Path) -> Path:
    """An executable named like the bundle's; the script only needs it to exist and be executable."""
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "training-studio"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def installed_files(data_home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data_home)): p.read_bytes() for p in sorted(data_home.rglob("*"))
            if p.is_file() and p.name != "mimeinfo.cache"}


def desktop_entry(data_home: Path) -> dict[str, str]:
    lines = (data_home / "applications" / "training-studio.desktop").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_install_puts_launcher_and_every_icon_size_in_place(tmp_path):
    exe = make_fake_bundle(tmp_path / "bundle")
    result = run_script(tmp_path / "share", str(exe))
    assert result.returncode == 0, result.stderr

    entry = desktop_entry(tmp_path / "share")
    assert entry["Exec"] == f"{exe} %F"  # files and folders from "Open with" go to the import window
    assert entry["MimeType"] == "image/png;image/jpeg;image/webp;image/bmp;image/gif;inode/directory;"
    assert entry["TryExec"] == str(exe)
    assert entry["Icon"] == "training-studio"
    assert entry["Name"] == "Training Studio"
    hicolor = tmp_path / "share" / "icons" / "hicolor"
    for size in ICON_SIZES:
        png = hicolor / f"{size}x{size}" / "apps" / "training-studio.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert b"<svg" in (hicolor / "scalable" / "apps" / "training-studio.svg").read_bytes()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate",
                                str(tmp_path / "share" / "applications" / "training-studio.desktop")],
                               capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout == "", check.stdout + check.stderr


def test_install_twice_gives_the_same_files_and_uninstall_removes_only_ours(tmp_path):
    data_home = tmp_path / "share"
    exe = make_fake_bundle(tmp_path / "bundle")
    neighbour = data_home / "applications" / "someone-else.desktop"
    neighbour.parent.mkdir(parents=True)
    neighbour.write_text("[Desktop Entry]\nType=Application\nName=Other\nExec=other\n")

    assert run_script(data_home, str(exe)).returncode == 0
    first = installed_files(data_home)
    assert run_script(data_home, str(exe)).returncode == 0
    assert installed_files(data_home) == first
    assert len(first) == 1 + len(ICON_SIZES) + 1 + 1  # launcher, PNGs, SVG, the neighbour

    result = run_script(data_home, "--uninstall")
    assert result.returncode == 0, result.stderr
    assert list(installed_files(data_home)) == ["applications/someone-else.desktop"]
    assert run_script(data_home, "--uninstall").returncode == 0  # nothing left to remove is fine


def test_relative_path_and_awkward_characters_are_resolved_and_quoted(tmp_path):
    awkward = tmp_path / 'my apps $HOME "x" 100%'
    make_fake_bundle(awkward)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share")}
    result = subprocess.run(["bash", str(SCRIPT), "training-studio"], cwd=awkward, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    entry = desktop_entry(tmp_path / "share")
    # Desktop Entry quoting: inside double quotes $ and " are backslash-escaped, then every backslash
    # is doubled once more by the string escaping of the value; % is doubled for field codes.
    quoted_dir = str(awkward).replace("$", "\\\\$").replace('"', '\\\\"').replace("%", "%%")
    assert entry["Exec"] == f'"{quoted_dir}/training-studio" %F'
    assert entry["TryExec"] == f"{awkward}/training-studio"


def test_missing_or_non_executable_bundle_is_refused_without_installing_anything(tmp_path):
    data_home = tmp_path / "share"
    result = run_script(data_home, str(tmp_path / "nowhere" / "training-studio"))
    assert result.returncode != 0
    assert "no bundle executable at" in result.stderr and "build it first" in result.stderr

    plain = tmp_path / "plain" / "training-studio"
    plain.parent.mkdir()
    plain.write_text("not executable")
    result = run_script(data_home, str(plain))
    assert result.returncode != 0
    assert "is not an executable file" in result.stderr
    assert not data_home.exists() or installed_files(data_home) == {}


@pytest.mark.parametrize("args", [["--bogus"], ["a", "b"], ["--uninstall", "extra"]])
def test_bad_arguments_get_a_specific_message(tmp_path, args):
    result = run_script(tmp_path / "share", *args)
    assert result.returncode != 0
    assert result.stderr.startswith("install-desktop: error: ")
    assert not (tmp_path / "share" / "applications" / "training-studio.desktop").exists()
