"""SampleListModel on its own (Qt's model tester attached): listings applied as inserts at the end when the
run only added samples, a rewritten sample fetched again, the nearest sample to a step, and a bounded
number of decoded thumbnails."""

from __future__ import annotations

from PySide6.QtGui import QImage

from training_studio.contract.models import JobOutputFile
from training_studio.ui.jobs.details.samples_store import THUMBNAILS_HELD, SampleListModel, SampleRole


def _sample(step: int | None, name: str | None = None, size: int = 100) -> JobOutputFile:
    return JobOutputFile(name=name or f"samples/step-{step:06d}.png", step=step, time="2026-01-01T00:00:00.000Z",
                         size=size)


def test_new_samples_are_inserted_at_the_end_and_others_reset(qapp, qtmodeltester):
    model = SampleListModel()
    qtmodeltester.check(model)
    inserted: list[tuple[int, int]] = []
    resets: list[int] = []
    model.rowsInserted.connect(lambda _parent, first, last: inserted.append((first, last)))
    model.modelReset.connect(lambda: resets.append(1))

    assert model.apply_listing([_sample(200), _sample(100)]) is True
    assert model.steps() == [100, 200] and inserted == [(0, 1)]
    assert model.apply_listing([_sample(100), _sample(200), _sample(300), _sample(400)]) is True
    assert inserted == [(0, 1), (2, 3)] and not resets
    assert model.apply_listing([_sample(100), _sample(200), _sample(300), _sample(400)]) is False

    # A listing that is not an extension (a sample vanished): one reset, thumbnails of unchanged rows kept.
    model.set_thumbnail("samples/step-000100.png", QImage(8, 8, QImage.Format.Format_RGB32))
    assert model.apply_listing([_sample(100), _sample(300), _sample(None, "samples/final.png")]) is True
    assert resets == [1]
    assert model.names() == ["samples/step-000100.png", "samples/step-000300.png", "samples/final.png"]
    assert model.has_thumbnail("samples/step-000100.png")
    assert model.index(2, 0).data() == "final.png"


def test_a_rewritten_sample_is_fetched_again_and_thumbnails_are_asked_for_once(qapp, qtmodeltester):
    model = SampleListModel()
    qtmodeltester.check(model)
    wanted: list[str] = []
    model.thumbnail_wanted.connect(wanted.append)
    model.apply_listing([_sample(100)])
    assert model.index(0, 0).data(SampleRole.THUMBNAIL) is None
    assert model.index(0, 0).data(SampleRole.THUMBNAIL) is None
    assert wanted == ["samples/step-000100.png"]
    model.set_thumbnail("samples/step-000100.png", QImage(8, 8, QImage.Format.Format_RGB32))
    assert not model.index(0, 0).data(SampleRole.THUMBNAIL).isNull()
    model.apply_listing([_sample(100, size=999)])  # the trainer rewrote it
    assert not model.has_thumbnail("samples/step-000100.png")
    assert model.index(0, 0).data(SampleRole.THUMBNAIL) is None
    assert wanted == ["samples/step-000100.png"] * 2
    model.set_thumbnail("samples/step-000100.png", None)  # not an image
    assert model.index(0, 0).data(SampleRole.THUMBNAIL_FAILED) is True


def test_nearest_row_and_the_thumbnail_bound(qapp, qtmodeltester):
    model = SampleListModel()
    qtmodeltester.check(model)
    model.apply_listing([_sample(step) for step in range(100, 100 * (THUMBNAILS_HELD + 51), 100)])
    assert model.nearest_row(0) == 0
    assert model.nearest_row(149) == 0 and model.nearest_row(150) == 1 and model.nearest_row(10**9) == \
        model.rowCount() - 1
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    for name in model.names():
        model.set_thumbnail(name, image)
    held = [name for name in model.names() if model.has_thumbnail(name)]
    assert len(held) == THUMBNAILS_HELD
    assert held == model.names()[-THUMBNAILS_HELD:]  # the oldest fetched went first
    wanted: list[str] = []
    model.thumbnail_wanted.connect(wanted.append)
    assert model.index(0, 0).data(SampleRole.THUMBNAIL) is None  # evicted: asked for again when painted
    assert wanted == [model.names()[0]]
