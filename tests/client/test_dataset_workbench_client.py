"""ApiClient's dataset workbench methods (issue 17) against the real server: batch captions with undo by
restore, buckets, repeats and validation, export, captioners and a caption job."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import zipfile

import pytest

from tests.server.helpers import committed_dataset, png_bytes, sha256_of
from tests.server.test_dataset_workbench import CAPTIONER
from training_studio.client import ApiClient, NotFound

IMAGES = [png_bytes(color=(1, 2, 3)), png_bytes(width=64, height=64, color=(4, 5, 6))]
SHAS = [sha256_of(data) for data in IMAGES]


@pytest.fixture
def srv(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "presets.toml").write_text(
        '[[preset]]\nid = "standin"\nkind = "caption"\n'
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(CAPTIONER))}, \"{{dataset_dir}}\"]\n")
    return server_factory("data")


def test_workbench_methods(srv):
    with srv.client() as http:
        dataset = committed_dataset(http, images=IMAGES, name="pets")

    async def main() -> None:
        client = ApiClient(srv.url, srv.token, timeout=30)
        try:
            result = await client.batch_captions(dataset["id"], "set", text="a pet", files="all")
            assert result.changed == 2 and sorted(result.files) == sorted(SHAS)
            preview = await client.batch_captions(dataset["id"], "replace", find="pet", replace="cat", dry_run=True)
            assert preview.dry_run and preview.changed == 2
            applied = await client.batch_captions(dataset["id"], "replace", find="pet", replace="cat",
                                                  files=[SHAS[0]])
            assert [(c.before, c.after) for c in applied.changes] == [("a pet", "a cat")]
            await client.batch_captions(dataset["id"], "restore",
                                        captions={c.sha256: c.before for c in applied.changes})
            assert {f.caption for f in await client.list_dataset_files(dataset["id"])} == {"a pet"}
            with pytest.raises(NotFound):
                await client.batch_captions(dataset["id"], "clear", files=["0" * 64])

            report = await client.dataset_buckets(dataset["id"], resolution=512, batch_size=2)
            # 64x64 is square; 32x24 (4:3) is nearest 576x448 (1.29) of kohya's 512 buckets
            assert [(b.width, b.height, b.files, b.small) for b in report.buckets] == [
                (512, 512, [SHAS[1]], True), (576, 448, [SHAS[0]], True)]
            assert sorted(report.upscaled) == sorted(SHAS)

            updated = await client.update_dataset(dataset["id"], repeats=2, validation_files=[SHAS[1]])
            assert updated.repeats == 2
            assert {f.sha256: f.validation for f in await client.list_dataset_files(dataset["id"])} == {
                SHAS[0]: False, SHAS[1]: True}

            chunks: list[bytes] = []

            async def write(data: bytes) -> None:
                chunks.append(data)

            size = await client.export_dataset(dataset["id"], write, layout="kohya")
            archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
            assert size == sum(map(len, chunks))
            assert {name.rsplit("/", 1)[0] for name in archive.namelist()} == {"2_pets", "validation/1_pets"}

            assert [c.id for c in await client.captioners()] == ["standin"]
            job = await client.start_caption_job(dataset["id"], "standin")
            assert job.kind == "caption"
            deadline = time.monotonic() + 120
            while (await client.job_status(job.id)).status.value not in ("completed", "failed", "cancelled"):
                assert time.monotonic() < deadline, "the caption job never finished"
                await asyncio.sleep(0.1)
            assert (await client.job_status(job.id)).status.value == "completed"
            captions = {f.sha256: f.caption for f in await client.list_dataset_files(dataset["id"])}
            assert captions == {SHAS[0]: "a 32x24 picture, colour 1,2,3", SHAS[1]: "a 64x64 picture, colour 4,5,6"}
        finally:
            await client.aclose()

    asyncio.run(main())
