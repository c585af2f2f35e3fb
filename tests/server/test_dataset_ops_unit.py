"""Plain tests of server/dataset_ops.py: caption operations, the replacement template, the validation pick."""

from __future__ import annotations

import pytest

from training_studio.server.dataset_ops import (
    CaptionOp,
    CaptionOpConflict,
    CaptionOpError,
    compute_caption_changes,
    validation_pick,
)

CAPTIONS = [("a", "a cat"), ("b", "a black cat"), ("c", "")]


@pytest.mark.parametrize(("op", "expected"), [
    (CaptionOp("prefix", text="sks, "), [("a", "a cat", "sks, a cat"), ("b", "a black cat", "sks, a black cat"),
                                         ("c", "", "sks, ")]),
    (CaptionOp("suffix", text="!"), [("a", "a cat", "a cat!"), ("b", "a black cat", "a black cat!"), ("c", "", "!")]),
    (CaptionOp("replace", find="CAT", replace="dog", ignore_case=True),
     [("a", "a cat", "a dog"), ("b", "a black cat", "a black dog")]),
    (CaptionOp("replace", find="CAT", replace="dog"), []),
    (CaptionOp("regex_replace", find=r"(\w+) cat", replace=r"cat \1 \2 \\ \g<x>"),
     [("a", "a cat", r"cat a \2 \ \g<x>"), ("b", "a black cat", r"a cat black \2 \ \g<x>")]),
    (CaptionOp("set", text="same"), [("a", "a cat", "same"), ("b", "a black cat", "same"), ("c", "", "same")]),
    (CaptionOp("clear"), [("a", "a cat", ""), ("b", "a black cat", "")]),
    (CaptionOp("replace", find=""), []),
])
def test_caption_operations(op, expected):
    assert compute_caption_changes(op, CAPTIONS) == expected


def test_restore_sets_the_given_captions():
    assert compute_caption_changes(CaptionOp("restore"), CAPTIONS[:2], {"a": "a cat", "b": "old"}) == [
        ("b", "a black cat", "old")]


def test_bad_patterns_and_too_long_results_are_refused():
    with pytest.raises(CaptionOpError, match="not a valid regular expression"):
        compute_caption_changes(CaptionOp("regex_replace", find="(unclosed"), CAPTIONS)
    with pytest.raises(CaptionOpConflict, match="over the limit") as caught:
        compute_caption_changes(CaptionOp("prefix", text="x" * 9_999), CAPTIONS)
    assert caught.value.code == "caption_too_long"


def test_validation_pick_is_reproducible_and_keeps_one_for_training():
    hashes = [f"{n:064x}" for n in range(100)]
    picked = validation_pick(hashes, 10)
    assert len(picked) == 10 and picked == validation_pick(list(reversed(hashes)), 10)
    assert validation_pick(hashes, 0) == set()
    assert len(validation_pick(hashes[:2], 90)) == 1
    assert validation_pick(hashes[:1], 50) == set()
