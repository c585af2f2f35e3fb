"""The Ray executor's fixtures (issue 18): one real local Ray head per test session (its ~6-15 s start is
paid once), and servers started with `--executor ray` against it, each with its own shared folder."""

from __future__ import annotations

import os

import pytest

from tests.ray.ray_head import RayHead
from tests.ray.ray_support import require_ray, start_head


@pytest.fixture(scope="session")
def ray_installed() -> None:
    """Ray's Jobs API client imports here. Where it does not (a platform Ray ships no wheels for), the test
    skips saying so, unless `CI` is set: there Ray comes with the test extras and its absence is a failure."""
    require_ray(os.environ)


@pytest.fixture(scope="session")
def ray_head(ray_installed):
    """The session's local head; one that cannot start on this platform skips (outside CI) or fails."""
    head = RayHead()
    try:
        start_head(head, os.environ)
        yield head
    finally:
        head.stop()
        head.remove()


@pytest.fixture
def ray_server_factory(server_factory, ray_head, tmp_path):
    """Start real servers that run their jobs on the session's Ray head."""
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)

    def make(name: str = "data", presets: str | None = None, *, shared_dir: bool = True, **kwargs):
        """`shared_dir=False`: no --shared-dir (datasets travel as each job's Ray working_dir)."""
        if presets is not None:
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / "presets.toml").write_text(presets)
        args = ["--cancel-grace", "1", "--executor", "ray", "--ray-address", ray_head.address]
        if shared_dir:
            args += ["--shared-dir", str(shared)]
        return server_factory(name, extra_args=args, **kwargs)

    make.shared_dir = shared  # type: ignore[attr-defined]
    return make
