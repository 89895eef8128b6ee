"""No work lost to a broker outage, on real parts: a redis-server of the test's own (never the
shared one), a real documents consumer, uploads and a curation start made by another process as
the web process makes them. Redis is stopped during an upload and a curation start: both
requests succeed, the rows wait; Redis comes back empty; the sweep hands both to the queue again
and both finish. A sweep never queues what the broker still holds, and a task queued twice runs
once."""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from gptstudio.db import session_scope, utcnow
from gptstudio.models import CurationRun, Document, Role, TrainingJob
from gptstudio.services import account, assistant
from tests.conftest import ROOT, free_port
from tests.curation.builders import make_docx
from tests.jobs.test_training import (
    SMALL,
    creator,  # noqa: F401 (a fixture)
    job_row,
    worker,
)
from tests.services.docs import BEES_MD, TAX_MD

PASSWORD = "correct horse battery"


class RedisServer:
    """A redis-server on a port of its own, with no persistence: a restart forgets the queue."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


def web(env: dict[str, str], code: str) -> str:
    """Run ``code`` in a process of its own, as the web process would (its last line back)."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def upload_code(user_id: int, assistant_id: int, path: Path) -> str:
    """Upload the file at ``path`` under its name, as the upload page does."""
    return (
        "import asyncio, pathlib; from gptstudio.db import session_scope; "
        "from gptstudio.models import User; from gptstudio.services import access, document; "
        f"actor = access.public(session_scope().__enter__().get(User, {user_id})); "
        f"row = asyncio.run(document.store_bytes(actor=actor, assistant_id={assistant_id}, "
        f"filename={path.name!r}, data=pathlib.Path({str(path)!r}).read_bytes())); "
        "print(row.id, row.status)"
    )


def written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def curate_code(user_id: int, assistant_id: int, *, semantic_dedupe: bool = False) -> str:
    """Start a curation run, as the data page does (with MiniLM's semantic dedupe: seconds of
    work in the consumer)."""
    return (
        "from gptstudio.db import session_scope; from gptstudio.models import User; "
        "from gptstudio.services import access, dataset; "
        f"actor = access.public(session_scope().__enter__().get(User, {user_id})); "
        f"row = dataset.start_curation(actor=actor, assistant_id={assistant_id}, "
        f"settings=dataset.CurationSettings(semantic_dedupe={semantic_dedupe})); "
        "print(row.id, row.status)"
    )


def document_status(document_id: int) -> str:
    with session_scope() as session:
        row = session.get(Document, document_id)
        assert row is not None
        return row.status


def run_status(run_id: int) -> str:
    with session_scope() as session:
        row = session.get(CurationRun, run_id)
        assert row is not None
        return row.status


def swept(**ids: list[int | None]) -> dict[str, list[int | None]]:
    """What :func:`requeue_waiting` returns: ``ids``, and nothing for every other kind."""
    kinds = ("documents", "curation_runs", "failed_curation_runs", "failed_documents")
    return {kind: ids.get(kind, []) for kind in kinds}


def documents_consumer(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """A documents consumer with one worker thread, as a process of its own logging to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "gptstudio.jobs.worker.documents_huey",
         "-w", "1"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip


def wait_for(
    what: str, predicate: object, timeout: float, *consumers: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert all(c.poll() is None for c in consumers), "a consumer died"
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


@pytest.mark.slow
def test_an_upload_and_a_curation_start_during_a_redis_outage_both_finish(
    db: str, own_redis: RedisServer, tmp_path: Path
) -> None:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATA_DIR=os.environ["GPTSTUDIO_DATA_DIR"], GPTSTUDIO_DATABASE_URL=db,
        GPTSTUDIO_REDIS_URL=own_redis.url, GPTSTUDIO_QUEUE_NAME=f"outbox-{os.getpid()}",
        OMP_NUM_THREADS="1",
    )  # fmt: skip
    log = (tmp_path / "consumer.log").open("w")
    consumer = subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "gptstudio.jobs.worker.documents_huey",
         "-w", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        first, status = web(
            env, upload_code(cy.id, bees, written(tmp_path / "bees.md", BEES_MD))
        ).split()
        assert status == "uploaded"
        wait_for("bees.md was not parsed", lambda: document_status(int(first)) == "parsed", 120,
                 consumer)  # fmt: skip

        own_redis.stop()  # the broker goes down: both requests still succeed
        second, status = web(
            env, upload_code(cy.id, bees, written(tmp_path / "tax.md", TAX_MD))
        ).split()
        assert status == "uploaded"
        run, status = web(env, curate_code(cy.id, bees)).split()
        assert status == "queued"
        time.sleep(2)
        assert document_status(int(second)) == "uploaded" and run_status(int(run)) == "queued"

        own_redis.start()  # back, and empty: what was enqueued before is gone as well
        wait_for("tax.md was never parsed", lambda: document_status(int(second)) == "parsed",
                 150, consumer)  # fmt: skip
        wait_for("the run never finished", lambda: run_status(int(run)) not in ("queued",
                 "running"), 150, consumer)  # fmt: skip
        assert run_status(int(run)) == "done"

        # Not stuck: the next run starts ("A curation run is already in progress" is over).
        again, status = web(env, curate_code(cy.id, bees)).split()
        assert status in ("queued", "running", "done") and int(again) > int(run)
        wait_for("the next run never finished", lambda: run_status(int(again)) == "done", 150,
                 consumer)  # fmt: skip
    finally:
        os.killpg(consumer.pid, signal.SIGTERM)
        consumer.wait(timeout=30)
        log.close()
    text = (tmp_path / "consumer.log").read_text()
    assert "handed waiting work to the queue again" in text, text[-3000:]


def test_the_sweep_queues_only_what_the_broker_lacks_and_a_second_copy_is_a_no_op(
    db: str, tmp_path: Path
) -> None:
    """On the embedded queue, in this process: waiting rows older than the grace time are queued
    once (a second sweep finds them held); a copy of a task whose row was claimed does nothing."""
    from gptstudio.jobs import worker
    from gptstudio.jobs.documents import parse_stored
    from gptstudio.jobs.outbox import GRACE_SECONDS, requeue_waiting

    queue = worker.documents_huey
    queue.flush()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    stored = tmp_path / "bees.md"
    stored.write_text(BEES_MD)
    old = utcnow() - timedelta(seconds=GRACE_SECONDS + 5)
    with session_scope() as session:
        waiting = Document(owner_id=cy.id, assistant_id=bees, filename="bees.md",
                           storage_path=str(stored), created_at=old)  # fmt: skip
        fresh = Document(owner_id=cy.id, assistant_id=bees, filename="new.md")
        done = Document(owner_id=cy.id, assistant_id=bees, filename="old.md", status="parsed",
                        created_at=old)  # fmt: skip
        run = CurationRun(assistant_id=bees, created_at=old)
        session.add_all([waiting, fresh, done, run])
        session.flush()
        ids = (waiting.id, run.id)
    try:
        assert requeue_waiting() == swept(documents=[ids[0]], curation_runs=[ids[1]])
        assert requeue_waiting() == swept()  # held: not again
        assert sorted((t.name, t.args) for t in queue.pending()) == [
            ("parse_document_task", (ids[0],)), ("run_curation_task", (ids[1],))
        ]  # fmt: skip

        parse_stored(ids[0] or 0)
        assert document_status(ids[0] or 0) == "parsed"
        with session_scope() as session:
            row = session.get(Document, ids[0])
            assert row is not None
            row.error = "marker"
        parse_stored(ids[0] or 0)  # a second copy: the row is no longer waiting
        with session_scope() as session:
            row = session.get(Document, ids[0])
            assert row is not None and row.status == "parsed" and row.error == "marker"
    finally:
        queue.flush()


STALE = 8  # seconds: short, yet a heartbeat (every second) survives a loaded machine's pauses


def test_a_running_run_whose_worker_stopped_is_queued_again_once_then_failed_with_a_message(
    db: str, settings_env: pytest.MonkeyPatch
) -> None:
    """In this process on the embedded queue: a run silent for longer than the stale time is
    queued again (first loss) and failed with a message that says what happened (second loss);
    a run whose heartbeat is fresh is left to its worker; a new run can start afterwards."""
    from gptstudio.jobs import worker
    from gptstudio.jobs.lease import RUNS, claim
    from gptstudio.jobs.outbox import requeue_waiting
    from gptstudio.services import dataset
    from gptstudio.settings import get_settings

    settings_env.setenv("GPTSTUDIO_JOB_STALE_SECONDS", str(STALE))
    get_settings.cache_clear()
    queue = worker.documents_huey
    queue.flush()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    wasps = assistant.create_assistant(actor=cy, name="Wasps").id
    silent = utcnow() - timedelta(seconds=STALE + 1)
    with session_scope() as session:
        lost = CurationRun(assistant_id=bees, created_at=silent)
        alive = CurationRun(assistant_id=wasps, created_at=silent)
        session.add_all([lost, alive])
        session.add(Document(owner_id=cy.id, assistant_id=bees, filename="a.md", status="parsed"))
        session.flush()
        lost_id, alive_id = lost.id or 0, alive.id or 0
    try:
        assert claim(RUNS, lost_id) == 1 and claim(RUNS, alive_id) == 1
        with session_scope() as session:
            for row in (session.get(CurationRun, lost_id), session.get(CurationRun, alive_id)):
                assert row is not None
                row.heartbeat_at = silent if row.id == lost_id else utcnow()
        with pytest.raises(Exception, match="already in progress"):
            dataset.start_curation(actor=cy, assistant_id=bees, settings=dataset.CurationSettings())

        # First loss: queued again (and handed to the queue in the same sweep).
        assert requeue_waiting() == swept(curation_runs=[lost_id])
        assert run_status(lost_id) == "queued" and run_status(alive_id) == "running"
        assert [(t.name, t.args) for t in queue.pending()] == [("run_curation_task", (lost_id,))]
        queue.flush()

        # A second worker takes it and dies too: failed, with a message; the next run starts.
        assert claim(RUNS, lost_id) == 2
        with session_scope() as session:
            row = session.get(CurationRun, lost_id)
            assert row is not None
            row.heartbeat_at = silent
        assert requeue_waiting() == swept(failed_curation_runs=[lost_id])
        with session_scope() as session:
            row = session.get(CurationRun, lost_id)
            assert row is not None and row.status == "failed" and row.finished_at is not None
            assert "worker running this curation stopped" in row.error
            assert "Run it again" in row.error
        assert run_status(alive_id) == "running"  # its heartbeat is fresh: still its worker's
        again = dataset.start_curation(
            actor=cy, assistant_id=bees, settings=dataset.CurationSettings()
        )
        assert again.status == "queued" and (again.id or 0) > alive_id
    finally:
        queue.flush()


@pytest.mark.slow
def test_a_curation_run_whose_consumer_is_killed_mid_run_finishes_on_the_next_consumer(
    db: str, redis_url: str, tmp_path: Path
) -> None:
    """A real documents consumer takes a run and is killed with SIGKILL mid-run: the run stays
    ``running`` (a new run is refused) until its heartbeat is older than the stale time; then the
    next consumer's start-up sweep queues it again and it finishes, and a new run can start."""
    from gptstudio.services import dataset

    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    with session_scope() as session:
        for number, text in enumerate((BEES_MD, TAX_MD) * 3):
            stored = tmp_path / f"doc-{number}.md"
            stored.write_text(f"# Copy {number}\n\n{text}")
            session.add(Document(owner_id=cy.id, assistant_id=bees, filename=stored.name,
                                 storage_path=str(stored), status="parsed"))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATA_DIR=os.environ["GPTSTUDIO_DATA_DIR"], GPTSTUDIO_DATABASE_URL=db,
        GPTSTUDIO_REDIS_URL=redis_url, GPTSTUDIO_QUEUE_NAME=f"stopped-{os.getpid()}",
        GPTSTUDIO_JOB_STALE_SECONDS=str(STALE), OMP_NUM_THREADS="1",
    )  # fmt: skip

    first = documents_consumer(env, tmp_path / "first.log")
    second: subprocess.Popen[str] | None = None
    try:
        # Semantic dedupe loads MiniLM in the consumer: seconds of work to be killed in.
        run, status = web(env, curate_code(cy.id, bees, semantic_dedupe=True)).split()
        assert status in ("queued", "running")
        wait_for("the run never started", lambda: run_status(int(run)) == "running", 120, first)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        assert run_status(int(run)) == "running", "the run finished before the kill: too short"
        with pytest.raises(Exception, match="already in progress"):
            dataset.start_curation(actor=cy, assistant_id=bees, settings=dataset.CurationSettings())

        time.sleep(STALE + 1)  # the dead worker's heartbeat is stale now
        second = documents_consumer(env, tmp_path / "second.log")  # its start-up sweep
        wait_for("the run never finished", lambda: run_status(int(run)) not in ("queued",
                 "running"), 180, second)  # fmt: skip
        with session_scope() as session:
            row = session.get(CurationRun, int(run))
            assert row is not None
            assert (row.status, row.attempts, row.error) == ("done", 2, ""), row.error
            assert row.counts["documents"] == 6
        again = dataset.start_curation(
            actor=cy, assistant_id=bees, settings=dataset.CurationSettings()
        )
        assert again.status in ("queued", "running", "done")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    text = (tmp_path / "second.log").read_text()
    assert "curation runs whose worker stopped" in text, text[-3000:]


def document_row(document_id: int) -> Document:
    with session_scope() as session:
        row = session.get(Document, document_id)
        assert row is not None
        session.expunge(row)
        return row


def test_a_parsing_document_whose_worker_stopped_is_queued_again_once_then_failed_with_a_message(
    db: str, settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In this process on the embedded queue: a document silent in ``parsing`` for longer than
    the stale time goes back to ``uploaded`` and to the queue (first loss), and is failed with a
    message the data page shows (second loss); a parse whose heartbeat is fresh is left to its
    worker, and a stopped worker's late write changes nothing."""
    from gptstudio.jobs import worker
    from gptstudio.jobs.lease import DOCUMENTS, claim, hold
    from gptstudio.jobs.outbox import requeue_waiting
    from gptstudio.pages.data.state import _document_row
    from gptstudio.services import document
    from gptstudio.settings import get_settings

    settings_env.setenv("GPTSTUDIO_JOB_STALE_SECONDS", str(STALE))
    get_settings.cache_clear()
    queue = worker.documents_huey
    queue.flush()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    silent = utcnow() - timedelta(seconds=STALE + 1)
    with session_scope() as session:
        lost = Document(owner_id=cy.id, assistant_id=bees, filename="big.csv",
                        storage_path=str(written(tmp_path / "big.csv", "a,b\n1,2\n")),
                        report={"columns": ["a", "b"]})  # fmt: skip
        alive = Document(owner_id=cy.id, assistant_id=bees, filename="long.md")
        session.add_all([lost, alive])
        session.flush()
        lost_id, alive_id = lost.id or 0, alive.id or 0
    try:
        assert claim(DOCUMENTS, lost_id) == 1 and claim(DOCUMENTS, alive_id) == 1
        assert claim(DOCUMENTS, lost_id) is None  # a second copy of the task finds it taken
        with session_scope() as session:
            for row in (session.get(Document, lost_id), session.get(Document, alive_id)):
                assert row is not None
                row.heartbeat_at = silent if row.id == lost_id else utcnow()
        with pytest.raises(Exception, match="still being read"):  # its worker would undo it
            document.choose_columns(actor=cy, document_id=lost_id, columns={"text": "a"})

        # First loss: back to "uploaded", and handed to the queue in the same sweep.
        assert requeue_waiting() == swept(documents=[lost_id])
        assert document_status(lost_id) == "uploaded" and document_status(alive_id) == "parsing"
        assert [(t.name, t.args) for t in queue.pending()] == [("parse_document_task", (lost_id,))]
        queue.flush()

        # A second worker takes it and stops too: failed, with what to do, on the data page.
        assert claim(DOCUMENTS, lost_id) == 2
        with session_scope() as session:
            row = session.get(Document, lost_id)
            assert row is not None
            row.heartbeat_at = silent
        assert requeue_waiting() == swept(failed_documents=[lost_id])
        shown = {
            d.id: _document_row(d) for d in document.list_documents(actor=cy, assistant_id=bees)
        }
        assert shown[lost_id]["status"] == "failed"
        assert "worker parsing this file stopped" in shown[lost_id]["detail"]
        assert "2 times" in shown[lost_id]["detail"]
        assert "Upload it again" in shown[lost_id]["detail"]
        assert not hold(DOCUMENTS, lost_id, 2, status="parsed")  # the old worker, too late
        assert document_status(lost_id) == "failed"
        assert document_status(alive_id) == "parsing"  # its heartbeat is fresh: still its worker's

        # A column choice parses it again from scratch: a new parse, attempts start over.
        document.choose_columns(actor=cy, document_id=lost_id, columns={"text": "a"})
        assert (document_status(lost_id), document_row(lost_id).attempts) == ("uploaded", 0)
    finally:
        queue.flush()


@functools.cache
def long_docx(paragraphs: int = 20_000) -> bytes:
    """A long book as DOCX (by default 20,000 paragraphs in 1,000 chapters, about 3 MB of text),
    which python-docx reads at about a millisecond a paragraph: by default a parse long enough to
    outlast the stale time."""
    rng = random.Random(7)
    words = BEES_MD.split()

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    blocks = []
    for number in range(paragraphs):
        if number % 20 == 0:
            blocks.append(("h1", f"Chapter {number // 20} {sentence(3)}"))
        blocks.append(("p", sentence(25)))
    return make_docx(blocks)


@pytest.mark.slow
def test_a_parse_whose_consumer_is_killed_mid_parse_finishes_on_the_next_consumer(
    db: str, redis_url: str, tmp_path: Path
) -> None:
    """A real documents consumer parses a long DOCX: its heartbeat keeps the parse its own past
    the stale time (a sweep then leaves it alone); killed with SIGKILL mid-parse, the document
    stays ``parsing`` until its heartbeat is stale; the next consumer's start-up sweep gives it
    to the queue again and it is parsed in full."""
    from gptstudio.jobs.outbox import recover_stopped

    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    book = tmp_path / "book.docx"
    book.write_bytes(long_docx())
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATA_DIR=os.environ["GPTSTUDIO_DATA_DIR"], GPTSTUDIO_DATABASE_URL=db,
        GPTSTUDIO_REDIS_URL=redis_url, GPTSTUDIO_QUEUE_NAME=f"parse-{os.getpid()}",
        GPTSTUDIO_JOB_STALE_SECONDS=str(STALE), OMP_NUM_THREADS="1",
    )  # fmt: skip
    first = documents_consumer(env, tmp_path / "first.log")
    second: subprocess.Popen[str] | None = None
    try:
        stored, status = web(env, upload_code(cy.id, bees, book)).split()
        document_id = int(stored)
        assert status == "uploaded"
        wait_for("the parse never started", lambda: document_status(document_id) == "parsing",
                 120, first)  # fmt: skip
        time.sleep(STALE + 1)  # longer than the stale time: only the heartbeat keeps it
        assert document_status(document_id) == "parsing", "parsed before the check: too short"
        assert document_id not in recover_stopped()["documents"]
        assert (utcnow() - document_row(document_id).heartbeat_at).total_seconds() < STALE
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        assert document_status(document_id) == "parsing", "parsed before the kill: too short"

        time.sleep(STALE + 1)  # the dead worker's heartbeat is stale now
        second = documents_consumer(env, tmp_path / "second.log")  # its start-up sweep
        wait_for("the document was never parsed", lambda: document_status(document_id) not in
                 ("uploaded", "parsing"), 300, second)  # fmt: skip
        row = document_row(document_id)
        assert (row.status, row.attempts, row.error) == ("parsed", 2, ""), row.error
        assert row.report["sections"] == 1000 and row.report["file_type"] == "docx"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    text = (tmp_path / "second.log").read_text()
    assert "documents whose worker stopped" in text, text[-3000:]


def test_the_training_sweep_queues_only_the_queued_jobs_the_broker_lacks(
    creator: tuple[account.UserPublic, int, int],  # noqa: F811
) -> None:
    """On the embedded queue, in this process: an old queued job the broker lacks is queued at
    its priority, once; a fresh one (its request may be enqueuing it) and a running one are not."""
    from gptstudio.jobs import worker
    from gptstudio.jobs.outbox import GRACE_SECONDS, requeue_training

    _cy, bees, data = creator
    queue = worker.huey
    queue.flush()
    old = utcnow() - timedelta(seconds=GRACE_SECONDS + 5)
    with session_scope() as session:
        lost = TrainingJob(assistant_id=bees, dataset_id=data, base_model="x", created_at=old,
                           priority=3)  # fmt: skip
        fresh = TrainingJob(assistant_id=bees, dataset_id=data, base_model="x")
        running = TrainingJob(assistant_id=bees, dataset_id=data, base_model="x",
                              status="running", created_at=old)  # fmt: skip
        session.add_all([lost, fresh, running])
        session.flush()
        lost_id = lost.id
    try:
        assert requeue_training() == [lost_id]
        assert requeue_training() == []  # held: not again
        assert [(t.name, t.args, t.priority) for t in queue.pending()] == [
            ("train_task", (lost_id,), 3)
        ]  # fmt: skip
        assert job_row(lost_id or 0).queue_task_id == queue.pending()[0].id
    finally:
        queue.flush()


@pytest.mark.slow
def test_a_training_start_during_a_redis_outage_trains_once_the_broker_is_back(
    creator: tuple[account.UserPublic, int, int],  # noqa: F811
    db: str,
    own_redis: RedisServer,
    tmp_path: Path,
    tiny_model: Path,
) -> None:
    """``training.start_job`` in a web process of its own while the test's redis-server is down:
    the request succeeds with a ``queued`` job; Redis comes back empty; the training consumer's
    sweep queues the job and it trains to the end."""
    from gptstudio.jobs.outbox import GRACE_SECONDS

    cy, _bees, data = creator
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATA_DIR=os.environ["GPTSTUDIO_DATA_DIR"], GPTSTUDIO_DATABASE_URL=db,
        GPTSTUDIO_BASE_MODEL=str(tiny_model), GPTSTUDIO_REDIS_URL=own_redis.url,
        GPTSTUDIO_QUEUE_NAME=f"outbox-train-{os.getpid()}", OMP_NUM_THREADS="1",
    )  # fmt: skip
    own_redis.stop()
    code = (
        "from gptstudio.db import session_scope; from gptstudio.models import User; "
        "from gptstudio.services import access, training; "
        f"actor = access.public(session_scope().__enter__().get(User, {cy.id})); "
        f"job = training.start_job(actor=actor, dataset_id={data}, overrides={SMALL!r}); "
        "print(job.id, job.status)"
    )
    job, status = web(env, code).split()
    assert status == "queued" and job_row(int(job)).queue_task_id == ""
    own_redis.start()  # back, and empty
    # Past the grace time, so the consumer's start-up sweep takes it (not a minute later).
    waited = (utcnow() - job_row(int(job)).created_at).total_seconds()
    time.sleep(max(0.0, GRACE_SECONDS + 1 - waited))
    log = (tmp_path / "train.log").open("w")
    consumer = subprocess.Popen(
        worker(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for("the job never finished", lambda: job_row(int(job)).status not in ("queued",
                 "running"), 300, consumer)  # fmt: skip
        row = job_row(int(job))
        assert row.status == "succeeded", row.error
        assert row.queue_task_id != ""
    finally:
        os.killpg(consumer.pid, signal.SIGTERM)
        consumer.wait(timeout=30)
        log.close()
    text = (tmp_path / "train.log").read_text()
    assert "handed queued training jobs to the queue again" in text, text[-3000:]
