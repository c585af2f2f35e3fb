"""Tests for ui/shared_fields.py: models held by the GUI share one fields-set per distinct content, and
everything pydantic derives from it reads as before (issue 19)."""

from __future__ import annotations

from training_studio.contract.models import DatasetFile, TrainingJob
from training_studio.ui.shared_fields import share_fields_set


def _file(index: int, **extra: object) -> DatasetFile:
    return DatasetFile(sha256=f"{index:064x}", filename=f"photo-{index}.jpg", size=1000 + index, width=64,
                       height=48, **extra)


def test_same_field_names_share_one_set_and_read_as_before() -> None:
    first, second = _file(1, caption="a"), _file(2, caption="b")
    dumped = [file.model_dump(exclude_unset=True) for file in (first, second)]
    names = set(first.model_fields_set)

    assert share_fields_set(first) is first
    share_fields_set(second)

    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    assert first.model_fields_set == names
    assert [file.model_dump(exclude_unset=True) for file in (first, second)] == dumped
    assert first == _file(1, caption="a")


def test_other_field_names_get_their_own_set() -> None:
    with_caption, without = share_fields_set(_file(3, caption="c")), share_fields_set(_file(4))

    assert with_caption.__pydantic_fields_set__ is not without.__pydantic_fields_set__
    assert "caption" in with_caption.model_fields_set
    assert "caption" not in without.model_fields_set


def test_a_copy_with_changes_does_not_touch_the_shared_set() -> None:
    held = share_fields_set(_file(5))
    other = share_fields_set(_file(6))

    edited = held.model_copy(update={"caption": "edited"})

    assert edited.caption == "edited" and "caption" in edited.model_fields_set
    assert "caption" not in held.model_fields_set and "caption" not in other.model_fields_set
    assert held.__pydantic_fields_set__ is other.__pydantic_fields_set__


def test_jobs_from_the_wire_share_too() -> None:
    wire = {"id": "job-1", "name": "run", "status": "queued", "progress": 0.0, "totalSteps": 100,
            "createdAt": "2026-12-04T10:00:00.000Z", "baseModel": "builtin-tiny-diffusion"}
    first = share_fields_set(TrainingJob.model_validate(wire))
    second = share_fields_set(TrainingJob.model_validate({**wire, "id": "job-2"}))

    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    assert first.model_dump(by_alias=True, exclude_unset=True) == {**wire, "status": first.status}
