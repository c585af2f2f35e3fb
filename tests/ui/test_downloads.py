"""ui.downloads, the `.part` file helpers shared by the checkpoint download and the dataset export: a
finished download replaces the target in one rename, a discarded one leaves nothing behind (also when the
part file was never created)."""

from __future__ import annotations

import asyncio

from training_studio.ui.downloads import PART_SUFFIX, discard_partial, finish_download, open_for_writing, part_path


def test_a_finished_download_replaces_the_target_and_leaves_no_part(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    part = part_path(target)
    assert part.name == "model.safetensors" + PART_SUFFIX
    handle = open_for_writing(part)
    handle.write(b"new bytes")
    assert target.read_bytes() == b"old"  # untouched until the download is complete
    finish_download(handle, part, target)
    assert target.read_bytes() == b"new bytes" and not part.exists()


def test_a_discarded_download_removes_its_part_file(tmp_path, harness):
    target = tmp_path / "out.zip"
    part = part_path(target)
    handle = open_for_writing(part)
    handle.write(b"half")

    async def discard_twice() -> None:
        loop = asyncio.get_running_loop()
        await discard_partial(loop, handle, part)
        await discard_partial(loop, None, part)  # already gone: nothing to do, no error

    harness.run(discard_twice())  # on the tests' one qasync loop, as in the app
    assert handle.closed and not part.exists() and not target.exists()
