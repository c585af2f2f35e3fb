"""The checkpoints table model on its own (no server: listings fed directly), under Qt's model tester:
newest step first, new checkpoints inserted where they belong with row inserts (not resets), rewritten ones
updated in place, vanished ones removed, the text of each column, and the file name offered for saving."""

from __future__ import annotations

from PySide6.QtCore import Qt

from training_studio.contract.models import JobOutputFile
from training_studio.ui.jobs.details.checkpoints_store import (
    CheckpointColumn,
    CheckpointRole,
    CheckpointTableModel,
    suggested_filename,
)


def ckpt(step: int | None, size: int = 1234, time: str = "2026-01-02T03:04:05Z", name: str | None = None) \
        -> JobOutputFile:
    return JobOutputFile(name=name or f"checkpoints/step-{step:06d}.npz", step=step, size=size, time=time)


def test_rows_follow_listings_newest_first_with_narrow_signals(qtbot, qtmodeltester):
    model = CheckpointTableModel()
    qtmodeltester.check(model)
    signals: list[str] = []
    model.rowsInserted.connect(lambda _p, first, last: signals.append(f"insert {first}-{last}"))
    model.rowsRemoved.connect(lambda _p, first, last: signals.append(f"remove {first}-{last}"))
    model.modelReset.connect(lambda: signals.append("reset"))
    model.dataChanged.connect(lambda top, _bottom, _roles: signals.append(f"changed {top.row()}"))

    assert model.apply_listing([ckpt(100), ckpt(200)]) == ["checkpoints/step-000200.npz",
                                                           "checkpoints/step-000100.npz"]
    assert [model.index(r, 0).data(CheckpointRole.STEP) for r in range(model.rowCount())] == [200, 100]
    assert signals == ["insert 0-1"]

    signals.clear()
    assert model.apply_listing([ckpt(100), ckpt(200), ckpt(300), ckpt(400)]) == [
        "checkpoints/step-000400.npz", "checkpoints/step-000300.npz"]
    assert signals == ["insert 0-1"]  # new ones on top, the rows held stay (and so does a selection)
    assert model.latest_step() == 400

    signals.clear()
    assert model.apply_listing([ckpt(100), ckpt(200), ckpt(300), ckpt(400)]) == []
    assert signals == []  # the same listing again: no signal at all

    signals.clear()
    model.apply_listing([ckpt(100), ckpt(150), ckpt(300, size=999), ckpt(400)])
    assert signals == ["remove 2-2", "changed 1", "insert 2-2"]
    assert model.names() == [f"checkpoints/step-{s:06d}.npz" for s in (400, 300, 150, 100)]
    assert model.index(1, CheckpointColumn.SIZE).data() == "999 B"

    # A file without a step goes after the stepped ones.
    model.apply_listing([ckpt(100), ckpt(None, name="checkpoints/last.npz")])
    assert model.names() == ["checkpoints/step-000100.npz", "checkpoints/last.npz"]
    assert model.index(1, CheckpointColumn.STEP).data() == "—"

    model.clear()
    assert model.rowCount() == 0 and model.latest_step() is None


def test_columns_say_step_file_size_and_time(qtbot, qtmodeltester):
    model = CheckpointTableModel()
    qtmodeltester.check(model)
    model.apply_listing([ckpt(12_000, size=2_500_000), ckpt(500, size=0)])
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers == ["Step", "File", "Size", "Written"]
    row = [model.index(0, c).data() for c in range(model.columnCount())]
    assert row[:3] == ["12,000", "step-012000.npz", "2.5 MB"]
    assert row[3].endswith(":05")  # to the second, in local time
    assert model.index(1, CheckpointColumn.SIZE).data() == "—"  # a size the server did not give
    tip = model.index(0, CheckpointColumn.FILE).data(Qt.ItemDataRole.ToolTipRole)
    assert "checkpoints/step-012000.npz" in tip and "2,500,000 bytes" in tip
    assert model.index(0, 0).data(CheckpointRole.NAME) == "checkpoints/step-012000.npz"


def test_the_offered_file_name_names_the_job_and_the_step():
    assert suggested_filename("my run: v2", "checkpoints/step-000200.npz") == "my_run__v2-step-000200.npz"
    assert suggested_filename(None, "checkpoints/step-000200.npz") == "step-000200.npz"
    assert suggested_filename("...", "a.safetensors") == "a.safetensors"
