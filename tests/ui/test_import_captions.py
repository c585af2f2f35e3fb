"""Captions that come with dropped images (issue 17, item 1): kohya `.txt` / `.caption` files and an
imagefolder's metadata.jsonl / metadata.csv are paired with their images in the scan, conflicts and orphans
are listed in the import window, a kohya `<repeats>_<name>` folder sets the dataset's repeats, and the
committed dataset has every caption (checked over HTTP and in the materialised layouts). Real server
subprocess, real PNGs."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt

from training_studio.ui.datasets.import_captions import MAX_CAPTION_FILE_BYTES, split_captions
from training_studio.ui.datasets import import_controller
from training_studio.ui.datasets.import_controller import ImportPhase
from training_studio.ui.datasets.import_model import ImportRole, RejectedRole
from training_studio.ui.datasets.uploader import ManifestFile, UploadManifest
from tests.ui.app_fixtures import sync_client
from tests.ui.test_dataset_upload import UPLOAD_TIMEOUT_MS, add_folder, noisy_png, panels, states  # noqa: F401


def server_captions(server, dataset_id: str) -> dict[str, str | None]:
    with sync_client(server.url, server.token) as http:
        response = http.get(f"/api/datasets/{dataset_id}/files")
        response.raise_for_status()
        return {item["filename"]: item.get("caption") for item in response.json()}


def server_dataset(server, dataset_id: str) -> dict:
    with sync_client(server.url, server.token) as http:
        response = http.get(f"/api/datasets/{dataset_id}")
        response.raise_for_status()
        return response.json()


def left_out(panel) -> dict[str, str]:
    model = panel.controller.rejected
    return {Path(model.index(row).data(RejectedRole.PATH)).name: model.index(row).data(RejectedRole.REASON)
            for row in range(model.rowCount())}


def upload_and_commit(panel, qtbot) -> str:
    panel.upload_button.click()
    qtbot.waitUntil(lambda: panel.controller.phase == ImportPhase.REVIEW, timeout=UPLOAD_TIMEOUT_MS)
    dataset_id = panel.controller.manifest.dataset_id
    with qtbot.waitSignal(panel.dataset_created, timeout=UPLOAD_TIMEOUT_MS):
        panel.commit_button.click()
    return dataset_id


def test_kohya_folder_keeps_captions_and_repeats(server, panels, monkeypatch, qtbot, tmp_path):
    folder = tmp_path / "train" / "10_cats"
    folder.mkdir(parents=True)
    for seed, name in enumerate(["a", "b", "c"]):
        (folder / f"{name}.png").write_bytes(noisy_png(100 + seed))
    (folder / "a.txt").write_text("a cat on a mat\n", encoding="utf-8")
    (folder / "b.caption").write_text("a black cat, ünïcode", encoding="utf-8")
    (folder / "c.txt").write_text("from the txt", encoding="utf-8")
    (folder / "c.caption").write_text("from the caption file", encoding="utf-8")
    (folder / "d.txt").write_text("an orphan caption", encoding="utf-8")

    panel = panels.open(server)
    add_folder(panel, monkeypatch, qtbot, folder, "cats")
    assert set(states(panel)) == {"a.png", "b.png", "c.png"}
    notes = left_out(panel)
    assert set(notes) == {"d.txt"}
    assert notes["d.txt"].startswith("caption file with no image")
    summary = panel.captions_label.text()
    assert panel.captions_label.isVisible()
    assert "3 captions found" in summary
    assert "c.png: c.txt chosen over c.caption" in summary
    assert "Repeats 10 from the folder 10_cats" in summary
    assert "c.png: c.txt chosen over c.caption" in panel.captions_label.toolTip()
    files = panel.controller.files
    tooltips = {Path(files.index(r).data(ImportRole.PATH)).name: files.index(r).data(Qt.ItemDataRole.ToolTipRole)
                for r in range(files.rowCount())}
    assert tooltips["b.png"].endswith("\nCaption: a black cat, ünïcode")

    dataset_id = upload_and_commit(panel, qtbot)
    assert server_captions(server, dataset_id) == {
        "a.png": "a cat on a mat", "b.png": "a black cat, ünïcode", "c.png": "from the txt"}
    dataset = server_dataset(server, dataset_id)
    assert (dataset["status"], dataset["repeats"]) == ("active", 10)
    # The committed layout has the captions in the kohya folder named after the repeats.
    kohya = server.data_dir / "datasets" / dataset_id / "kohya"
    [materialised] = list(kohya.iterdir())
    assert materialised.name.startswith("10_")
    assert sorted(p.read_text(encoding="utf-8") for p in materialised.glob("*.txt")) == [
        "a black cat, ünïcode", "a cat on a mat", "from the txt"]
    assert not panel.captions_label.isVisible()  # the window is ready for the next dataset


def test_imagefolder_metadata_keeps_captions_in_nested_folders(server, panels, monkeypatch, qtbot, tmp_path):
    root = tmp_path / "imagefolder"
    (root / "sub").mkdir(parents=True)
    (root / "x.png").write_bytes(noisy_png(200))
    (root / "sub" / "y.png").write_bytes(noisy_png(201))
    (root / "sub" / "z.png").write_bytes(noisy_png(202))
    (root / "plain.png").write_bytes(noisy_png(203))
    (root / "metadata.jsonl").write_text(
        json.dumps({"file_name": "x.png", "text": "x from jsonl"}) + "\n"
        + json.dumps({"file_name": "sub/y.png", "text": "y from jsonl"}) + "\n"
        + json.dumps({"file_name": "gone.png", "text": "no such image"}) + "\n", encoding="utf-8")
    (root / "sub" / "metadata.csv").write_text('file_name,text\nz.png,"z, from csv"\n', encoding="utf-8")
    (root / "sub" / "y.txt").write_text("y from txt", encoding="utf-8")  # wins over the metadata
    (root / "plain.txt").write_bytes(b"caf\xe9")  # not UTF-8: noted, not used
    (root / "x.caption").write_bytes(b"x" * (MAX_CAPTION_FILE_BYTES + 1))  # too big: noted, metadata used

    # Every caption goes in its own batch request here, as a dataset with megabytes of captions would.
    monkeypatch.setattr(import_controller, "CAPTION_CHUNK_BYTES", 1)
    panel = panels.open(server)
    add_folder(panel, monkeypatch, qtbot, root, "folder")
    assert set(states(panel)) == {"x.png", "y.png", "z.png", "plain.png"}
    notes = left_out(panel)
    assert notes["plain.txt"].startswith("caption file is not UTF-8 text")
    assert notes["x.caption"].startswith("caption file over 64 KiB")
    assert notes["metadata.jsonl"] == "1 row name no image that was added: those rows are ignored"
    summary = panel.captions_label.text()
    assert "y.png: y.txt chosen over metadata.jsonl" in summary
    assert "x.png: metadata.jsonl chosen over x.caption" in summary
    assert "Repeats" not in summary

    dataset_id = upload_and_commit(panel, qtbot)
    assert server_captions(server, dataset_id) == {
        "x.png": "x from jsonl", "y.png": "y from txt", "z.png": "z, from csv", "plain.png": None}
    assert server_dataset(server, dataset_id)["repeats"] == 10  # the server's default: no kohya folder
    # The materialised layouts hold the same captions: the imagefolder's metadata.jsonl and kohya's .txt files
    # (a file without a caption has an empty one), both named by content hash.
    with sync_client(server.url, server.token) as http:
        files = http.get(f"/api/datasets/{dataset_id}/files").json()
    expected = {file["sha256"]: file["caption"] or "" for file in files}
    assert sorted(expected.values()) == ["", "x from jsonl", "y from txt", "z, from csv"]
    root = server.data_dir / "datasets" / dataset_id
    lines = (root / "imagefolder" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    assert {Path(item["file_name"]).stem: item["text"] for item in map(json.loads, lines)} == expected
    assert sorted(item["file_name"] for item in map(json.loads, lines)) == sorted(f"{sha}.png" for sha in expected)
    [kohya] = list((root / "kohya").iterdir())
    assert kohya.name == "10_folder"
    assert {path.stem: path.read_text(encoding="utf-8") for path in kohya.glob("*.txt")} == expected


def test_kohya_folders_with_different_repeats_become_one_dataset_each(server, panels, monkeypatch, qtbot,
                                                                      tmp_path):
    root = tmp_path / "train"
    for folder in ("3_cats", "3_kittens", "5_dogs", "7_birds"):
        (root / folder).mkdir(parents=True)
    (root / "3_cats" / "c.png").write_bytes(noisy_png(300))
    (root / "3_cats" / "c.txt").write_text("a cat", encoding="utf-8")
    (root / "3_kittens" / "k.png").write_bytes(noisy_png(301))
    (root / "5_dogs" / "d.png").write_bytes(noisy_png(302))
    (root / "5_dogs" / "d.txt").write_text("a dog", encoding="utf-8")
    (root / "5_dogs" / "orphan.txt").write_text("no image", encoding="utf-8")
    (root / "7_birds" / "b.png").write_bytes(noisy_png(303))
    panel = panels.open(server)
    add_folder(panel, monkeypatch, qtbot, root, "pets")
    # The first repeats found (3) is this dataset's, with every folder of that repeats; the others wait.
    assert set(states(panel)) == {"c.png", "k.png"}
    assert left_out(panel) == {}  # the set-aside folder's orphan is its own dataset's business
    summary = panel.captions_label.text()
    assert "Repeats 3 from the folder 3_cats" in summary
    assert "Offered next, each as its own dataset after this one is committed: 5_dogs (repeats 5), " \
           "7_birds (repeats 7)" in summary
    first_id = upload_and_commit(panel, qtbot)
    assert server_dataset(server, first_id)["repeats"] == 3
    assert server_captions(server, first_id) == {"c.png": "a cat", "k.png": None}

    # Then 5_dogs, named after its folder, is offered as the next import.
    qtbot.waitUntil(lambda: not panel.controller.is_scanning and set(states(panel)) == {"d.png"}, timeout=20_000)
    assert panel.name_edit.text() == "dogs"
    assert "Repeats 5 from the folder 5_dogs" in panel.captions_label.text()
    assert "7_birds (repeats 7)" in panel.captions_label.text()
    assert set(left_out(panel)) == {"orphan.txt"}
    second_id = upload_and_commit(panel, qtbot)
    assert (server_dataset(server, second_id)["repeats"], server_dataset(server, second_id)["name"]) == (5, "dogs")
    assert server_captions(server, second_id) == {"d.png": "a dog"}

    qtbot.waitUntil(lambda: not panel.controller.is_scanning and set(states(panel)) == {"b.png"}, timeout=20_000)
    assert panel.name_edit.text() == "birds" and "Offered next" not in panel.captions_label.text()
    third_id = upload_and_commit(panel, qtbot)
    assert server_dataset(server, third_id)["repeats"] == 7
    assert panel.controller.next_datasets == [] and panel.controller.files.rowCount() == 0


def test_split_captions_pairs_by_folder_and_stem(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    paths = [tmp_path / "one" / "a.png", tmp_path / "one" / "a.txt", tmp_path / "two" / "a.txt",
             tmp_path / "two" / "b.jpg", tmp_path / "two" / "b.TXT"]
    for path in paths:
        path.write_text("  caption of " + path.parent.name + "/" + path.name + "\n", encoding="utf-8")
    scan = split_captions([str(path) for path in paths])
    assert scan.media == [str(paths[0]), str(paths[3])]
    assert scan.captions == {str(paths[0]): "caption of one/a.txt", str(paths[3]): "caption of two/b.TXT"}
    assert [(Path(note.path).parent.name, Path(note.path).name) for note in scan.notes] == [("two", "a.txt")]
    assert scan.conflicts == [] and scan.kohya_folders == []


def test_manifest_keeps_captions_and_repeats_for_a_resume():
    manifest = UploadManifest(dataset_id="d1", dataset_name="n", dataset_type="image", server_url="http://x",
                              files=[ManifestFile("/p/a.png", "a.png", 1, 2, "a" * 64, caption="hello"),
                                     ManifestFile("/p/b.png", "b.png", 1, 2, "b" * 64)], repeats=7)
    data = json.loads(json.dumps(manifest.to_json()))
    assert "caption" not in data["files"][1]
    again = UploadManifest.from_json(data)
    assert [file.caption for file in again.files] == ["hello", None] and again.repeats == 7


def test_captions_and_repeats_survive_an_app_restart_before_the_commit(server, panels, monkeypatch, qtbot,
                                                                       tmp_path):
    folder = tmp_path / "4_birds"
    folder.mkdir()
    (folder / "owl.png").write_bytes(noisy_png(400))
    (folder / "owl.txt").write_text("an owl at night", encoding="utf-8")
    (folder / "jay.png").write_bytes(noisy_png(401))
    first = panels.open(server)
    add_folder(first, monkeypatch, qtbot, folder, "birds")
    first.upload_button.click()
    qtbot.waitUntil(lambda: first.controller.phase == ImportPhase.REVIEW, timeout=UPLOAD_TIMEOUT_MS)
    dataset_id = first.controller.manifest.dataset_id
    panels.close(first)  # the app quits before the commit: the manifest keeps captions and repeats

    second = panels.open(server)
    with qtbot.waitSignal(second.controller.resume_available, timeout=10_000,
                          check_params_cb=lambda manifest: manifest is not None) as offered:
        second.controller.check_unfinished()
    second.controller.resume(offered.args[0])
    qtbot.waitUntil(lambda: second.controller.phase == ImportPhase.REVIEW, timeout=UPLOAD_TIMEOUT_MS)
    assert "Repeats 4" in second.captions_label.text()
    with qtbot.waitSignal(second.dataset_created, timeout=UPLOAD_TIMEOUT_MS):
        second.commit_button.click()
    assert server_captions(server, dataset_id) == {"owl.png": "an owl at night", "jay.png": None}
    assert server_dataset(server, dataset_id)["repeats"] == 4


def test_a_folder_names_a_dataset_by_its_name_without_the_kohya_repeats():
    from training_studio.ui.datasets.import_captions import folder_dataset_name

    assert folder_dataset_name("/photos/10_cats") == "cats"
    assert folder_dataset_name("/photos/10_cats/") == "cats"
    assert folder_dataset_name("/photos/summer 2026") == "summer 2026"
    # Not kohya folders (repeats outside 1-10,000, or no name after the number): the name stays whole.
    assert folder_dataset_name("/photos/0_cats") == "0_cats"
    assert folder_dataset_name("/photos/10001_cats") == "10001_cats"
    assert folder_dataset_name("/photos/10_ ") == "10_"
    assert folder_dataset_name("/photos/_x") == "_x"
    assert folder_dataset_name("/") == ""
