"""JobListModel's cheap refresh paths (issue 19): refreshes of new objects compared by revision, the objects a
caller reuses recognised by identity whatever the model held before, scattered changes merged into few
signals, and the status journal (`status_changes_since`) the finished-job watcher reads instead of every row."""

from __future__ import annotations

import pytest

from training_studio.contract.models import TrainingJob
from training_studio.ui.jobs.model import JobColumn, JobListModel
from tests.support.faulty_server import job_json


def job(number: int, revision: int | None, status: str = "running", **fields) -> TrainingJob:
    created = f"2026-01-01T{number // 3600:02d}:{number // 60 % 60:02d}:{number % 60:02d}.000Z"
    return TrainingJob.model_validate(job_json(f"job-{number:05d}", revision=revision, status=status,
                                               created_at=created, **fields))


@pytest.fixture
def model(qapp, qtmodeltester) -> JobListModel:
    built = JobListModel()
    qtmodeltester.check(built, force_py=True)  # stays attached: every later diff is verified
    return built


def changes(model: JobListModel) -> list[tuple[int, int, int, int]]:
    seen: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl.row(), tl.column(), br.row(), br.column())))
    return seen


def test_new_objects_with_the_revisions_held_are_no_change_and_a_bumped_one_is(model):
    model.apply_active_snapshot([job(n, 100 + n) for n in range(6)])
    seen = changes(model)
    model.apply_active_snapshot([job(n, 100 + n) for n in range(6)])  # new objects, same revisions
    assert seen == []
    refreshed = [job(n, 100 + n) for n in range(6)]
    refreshed[4] = job(4, 200, progress=90.0)
    model.apply_active_snapshot(refreshed)
    assert seen == [(4, JobColumn.PROGRESS, 4, JobColumn.PROGRESS)]
    assert model.index(4, JobColumn.PROGRESS).data() == "90%"
    # An older revision never replaces the held one, whichever way it is compared.
    refreshed[4] = job(4, 150, progress=10.0)
    model.apply_active_snapshot(refreshed)
    assert model.job_at(4).revision == 200 and model.index(4, JobColumn.PROGRESS).data() == "90%"


def test_jobs_sharing_a_revision_that_shift_position_are_not_taken_for_unchanged(model):
    # Jobs stamped by one migration share a revision: the id at each position is compared too.
    model.apply_active_snapshot([job(0, 5), job(1, 5), job(2, 5)])
    gone = model.apply_active_snapshot([job(0, 5), job(2, 5), job(3, 5, status="queued")])
    assert gone == ["job-00001"]
    assert [model.job_at(row).id for row in range(model.rowCount())] == [
        "job-00000", "job-00001", "job-00002", "job-00003"]
    assert model.active_count() == 4


def test_without_revisions_new_objects_are_compared_by_their_fields(model):
    model.apply_active_snapshot([job(n, None) for n in range(4)])
    seen = changes(model)
    refreshed = [job(n, None) for n in range(4)]
    refreshed[1] = job(1, None, currentLoss=0.125)
    model.apply_active_snapshot(refreshed)
    assert seen == [(1, JobColumn.LOSS, 1, JobColumn.LOSS)]


def test_a_caller_reusing_its_objects_is_followed_even_after_a_load_of_other_objects(model):
    model.apply_active_snapshot([job(n, 100 + n) for n in range(8)])  # e.g. a first load validated elsewhere
    mine = [job(n, 100 + n) for n in range(8)]
    model.apply_active_snapshot(mine)
    seen = changes(model)
    mine[3] = job(3, 300, progress=70.0)
    model.apply_active_snapshot(list(mine))  # the same objects, but one
    assert seen == [(3, JobColumn.PROGRESS, 3, JobColumn.PROGRESS)]
    assert model.job_at(3) is mine[3]


def test_scattered_changes_share_signals_and_sparse_ones_keep_their_cells(qapp):
    model = JobListModel()  # no model tester: it re-walks every row on every signal
    model.apply_active_snapshot([job(n, 1000 + n) for n in range(1000)])
    seen = changes(model)
    nearby = [0, 3, 7, 20, 30, 41, 45, 60, 62, 80, 85, 99, 101, 120, 140, 141, 150, 170, 190, 199]  # 20 rows
    refreshed = [job(n, 1000 + n) for n in range(1000)]
    for n in nearby:
        refreshed[n] = job(n, 5000 + n, progress=77.0)
    model.apply_active_snapshot(refreshed)
    covered = {row for top, _first, bottom, _last in seen for row in range(top, bottom + 1)}
    assert covered >= set(nearby)
    assert len(seen) < len(nearby)  # merged across the few unchanged rows between them
    assert all(first == last == JobColumn.PROGRESS for _top, first, _bottom, last in seen)
    assert all(bottom - top < 200 for top, _first, bottom, _last in seen)  # never above Qt's 200 cells

    seen.clear()
    sparse = list(range(0, 1000, 50))  # 20 rows, 49 unchanged rows apart
    for n in sparse:
        refreshed[n] = job(n, 9000 + n, progress=12.0)
    model.apply_active_snapshot(refreshed)
    assert sorted(seen) == [(n, JobColumn.PROGRESS, n, JobColumn.PROGRESS) for n in sparse]


def test_the_status_journal_names_rows_added_removed_or_changing_status(model):
    cursor, changed = model.status_changes_since(0)
    assert changed == [] and cursor == 0
    model.apply_active_snapshot([job(n, 10 + n) for n in range(3)])
    cursor, changed = model.status_changes_since(cursor)
    assert sorted(set(changed)) == ["job-00000", "job-00001", "job-00002"]

    model.apply_active_snapshot([job(0, 10), job(1, 20, progress=55.0), job(2, 12)])  # progress only
    cursor, changed = model.status_changes_since(cursor)
    assert changed == []
    model.update_job(job(2, 30, status="completed"))
    model.remove_job("job-00000")
    cursor, changed = model.status_changes_since(cursor)
    assert set(changed) == {"job-00002", "job-00000"}
    assert model.status_changes_since(cursor) == (cursor, [])


def test_the_journal_stays_bounded_and_says_when_it_no_longer_reaches_back(model):
    model.apply_active_snapshot([job(0, 1)])
    start, _ = model.status_changes_since(0)
    revision = 1
    for flip in range(800):  # 1,600 entries for one row: far beyond what it keeps
        revision += 1
        model.apply_updates([job(0, revision, status="queued" if flip % 2 else "running")])
    assert len(model._status_journal) <= 2 * model.rowCount() + 1024
    cursor, changed = model.status_changes_since(start)
    assert changed is None  # the caller looks at every row instead
    assert model.status_changes_since(cursor) == (cursor, [])
    assert model.status_changes_since(cursor + 5)[1] is None  # a cursor from elsewhere: look at every row


def test_the_finish_watcher_reads_the_journal_and_falls_back_to_every_row(harness):
    from training_studio.ui.notifications import JobFinishWatcher

    store = harness.store("http://127.0.0.1:9")  # never started: rows are put in the model directly
    watcher = JobFinishWatcher(store)
    model = store.model
    model.apply_updates([job(n, 10 + n, status="queued" if n % 2 else "running") for n in range(50)])
    assert watcher.scan() == []
    model.apply_updates([job(7, 100, status="completed"), job(3, 101, status="failed", error="disk full"),
                         job(5, 102, status="cancelled")])
    notices = watcher.scan()
    assert [(n.job_id, n.title) for n in notices] == [("job-00003", "Training failed"),
                                                      ("job-00007", "Training completed")]  # row order
    assert watcher.scan() == []

    # More changes than the journal keeps between two scans: the watcher looks at every row, still exact.
    revision = 200
    for flip in range(1200):
        revision += 1
        model.apply_updates([job(10, revision, status="queued" if flip % 2 else "running")])
    model.apply_updates([job(12, revision + 1, status="completed")])
    model.remove_job("job-00014")
    assert model.status_changes_since(0)[1] is None
    assert [n.job_id for n in watcher.scan()] == ["job-00012"]
    model.apply_updates([job(16, revision + 2, status="completed")])
    assert [n.job_id for n in watcher.scan()] == ["job-00016"]
    assert watcher.scan() == []
