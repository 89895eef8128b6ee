"""Data-parallel training: one process per GPU (or per CPU share, on gloo), run by accelerate.

:func:`trainer.launch.train` calls :func:`launch` when a run needs more than one process
(:func:`resolve_processes`: ``num_processes``, 0 meaning one per visible GPU). The caller's
process stays the coordinator; it starts the ranks as ``python -m trainer.distributed SPEC``
subprocesses (like ``torchrun`` does, but from Python so that the caller's callbacks keep
working) and:

- forwards rank 0's progress events to ``on_progress`` (rank 0 is the only one that writes
  checkpoints, progress, the report and the adapter);
- polls ``should_stop`` and tells every rank to stop (a line on its stdin). The ranks agree on
  the step to stop at with an all-reduce (``accelerator.set_trigger`` / ``check_trigger``), so
  none is left waiting in a collective; the stop checkpoint is written as in a single process;
- kills the other ranks as soon as one fails (they would hang in the next all-reduce), and
  raises the failed rank's :class:`~trainer.errors.TrainingError` (same class, same message).

Ranks die with the coordinator (``PR_SET_PDEATHSIG`` on Linux; elsewhere a closed stdin makes
them stop at the next step), so a killed worker leaves no orphan training on, and resuming works
exactly as in a single process: every rank restores its own RNG state and the shared data
position from the newest checkpoint.

Why subprocesses and not ``accelerate launch`` / ``torch.multiprocessing``: the callbacks are
Python objects of the worker (a database reporter), so the launcher must live in the worker's
process; ``multiprocessing`` refuses to start children from a daemonic process (huey's
``-k process`` workers are daemonic) and would have to pickle the callbacks; a plain subprocess
per rank needs neither. The process group rendezvous is a file (``init_method=file://``) in a
private temporary folder: no TCP port to pick, so two jobs on one host cannot collide.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from trainer import checkpoint as ckpt
from trainer import errors
from trainer.config import JobConfig
from trainer.errors import CheckpointError, DeviceError, TrainingError
from trainer.modeling import pick_hardware
from trainer.train import (
    CHECKPOINTS_DIR,
    Parallel,
    TrainResult,
    check_output_dir,
    check_processes,
    load_splits,
    main,
    setup,
)

logger = logging.getLogger(__name__)
CHANNEL_ENV, PARENT_ENV = "GPTSTUDIO_TRAINER_CHANNEL", "GPTSTUDIO_TRAINER_PARENT"
STOP_LINE = b"stop\n"
POLL_SECONDS = 0.1
COLLECTIVE_TIMEOUT = timedelta(minutes=30)  # rank 0 writing a large checkpoint while others wait
EXIT_REFUSED, EXIT_CRASHED = 2, 1


# --- how many processes ---------------------------------------------------------------------


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def saved_processes(output: Path) -> int | None:
    """How many processes wrote the newest checkpoint in ``output`` (None: no checkpoint)."""
    latest = ckpt.latest_checkpoint(output / CHECKPOINTS_DIR)
    if latest is None:
        return None
    try:
        state = json.loads((latest / ckpt.STATE).read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {latest} cannot be read ({error}); delete it") from error
    return int(state.get("processes", 1))


def resolve_processes(config: JobConfig, output: Path, *, resume: bool) -> int:
    """Processes for this run: ``num_processes``, else the checkpoint's count when resuming,
    else one per visible GPU (1 on CPU). Refuses counts this host cannot run."""
    gpus = visible_gpus()
    saved = saved_processes(output) if resume else None
    wanted = config.num_processes or saved or max(1, gpus)
    if saved is not None and saved != wanted:
        check_processes(output, saved, wanted)
    if gpus and wanted > gpus:
        where = f"the checkpoint in {output} was written by {wanted} processes; " if saved else ""
        raise DeviceError(
            f"{where}num_processes {wanted} needs {wanted} GPUs and this host has {gpus}; "
            f"set num_processes to at most {gpus} (0: one per GPU) or run on a larger host"
        )
    return wanted


# --- the coordinator (the caller's process) -------------------------------------------------


def launch(
    config: JobConfig,
    *,
    processes: int,
    dataset: Any,
    output_dir: Path,
    eval_dataset: Any = None,
    resume: bool = False,
    on_progress: Any = None,
    should_stop: Any = None,
) -> TrainResult:
    """Run the job on ``processes`` ranks and return rank 0's :class:`TrainResult`."""
    # The cheap checks fail here, before any process starts, with the single-process messages.
    check_output_dir(output_dir, resume=resume)
    load_splits(config, dataset, eval_dataset)
    pick_hardware(config.precision)
    folder = Path(tempfile.mkdtemp(prefix="gptstudio-ddp-"))
    spec = {
        "config": config.to_dict(),
        "dataset": as_source(dataset),
        "eval_dataset": None if eval_dataset is None else as_source(eval_dataset),
        "output_dir": str(output_dir),
        "resume": resume,
        "rendezvous": str(folder / "rendezvous"),
    }
    try:
        (folder / "spec.json").write_text(json.dumps(spec))
        ranks = Ranks(folder / "spec.json", processes)  # kills what it started if one fails
        try:
            stop = should_stop or (lambda: False)
            result = ranks.supervise(on_progress or (lambda _: None), stop)
        finally:
            ranks.kill()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    adapter = result.get("adapter_dir")
    return TrainResult(
        result["status"], output_dir, Path(adapter) if adapter else None, result["report"]
    )


def as_source(dataset: Any) -> Any:
    """A JSON-able dataset: a path stays a path, records go along as a list."""
    if isinstance(dataset, (str, Path)):
        return {"path": str(Path(dataset).resolve())}
    return {"records": list(dataset)}


class Ranks:
    """The rank subprocesses of one run and the messages they send."""

    def __init__(self, spec: Path, processes: int) -> None:
        self.inbox: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        self.processes: list[subprocess.Popen[bytes]] = []
        package_root = str(Path(__file__).resolve().parent.parent)
        python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        try:
            for rank in range(processes):
                self._start(spec, rank, processes, python_path)
        except BaseException:
            self.kill()  # the ranks already started would wait for the others for 30 minutes
            raise

    def _start(self, spec: Path, rank: int, processes: int, python_path: str) -> None:
        read, write = os.pipe()
        env = {
            **os.environ,
            "PYTHONPATH": python_path,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(processes),
            "LOCAL_WORLD_SIZE": str(processes),
            CHANNEL_ENV: str(write),
            PARENT_ENV: str(os.getpid()),
        }
        try:
            process = subprocess.Popen(  # noqa: S603 (our interpreter, our module)
                [sys.executable, "-m", "trainer.distributed", str(spec)],
                stdin=subprocess.PIPE,
                env=env,
                pass_fds=(write,),
            )
        finally:
            os.close(write)
        self.processes.append(process)
        reader = threading.Thread(
            target=self._read, args=(rank, os.fdopen(read, "rb")), daemon=True
        )
        reader.start()

    def _read(self, rank: int, channel: IO[bytes]) -> None:
        with channel:
            for line in channel:
                with contextlib.suppress(ValueError):
                    self.inbox.put((rank, json.loads(line)))
        self.inbox.put((rank, None))

    def supervise(self, on_progress: Any, should_stop: Any) -> dict[str, Any]:
        """Relay progress and stop requests until every rank has exited; rank 0's result."""
        result: dict[str, Any] | None = None
        failure: dict[str, Any] | None = None
        stop_sent = False
        closed: set[int] = set()  # ranks whose channel reached its end (all messages read)
        while True:
            try:
                rank, message = self.inbox.get(timeout=POLL_SECONDS)
            except queue.Empty:
                message = None
            else:
                if message is None:
                    closed.add(rank)
            if message is not None:
                if message["kind"] == "progress":
                    on_progress(message["event"])
                elif message["kind"] == "result" and rank == 0:
                    result = message
                elif message["kind"] == "error" and failure is None:
                    failure = {**message, "rank": rank}
            if not stop_sent and should_stop():
                self.stop()
                stop_sent = True
            codes = [p.poll() for p in self.processes]
            failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)]
            # A failed rank's channel closes as it exits: read its error before deciding.
            if failure is not None or (failed and closed.issuperset(failed)):
                self.kill()  # the others would wait forever in the next collective
                raise self.error(failure, codes)
            if all(code == 0 for code in codes) and len(closed) == len(self.processes):
                if result is None:
                    raise RuntimeError("training processes exited without a result")
                return result

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(OSError):  # a rank that already exited
                assert process.stdin is not None
                process.stdin.write(STOP_LINE)
                process.stdin.flush()

    def kill(self) -> None:
        """SIGKILL every rank still running and reap it."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait()
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()

    def error(self, failure: dict[str, Any] | None, codes: Sequence[int | None]) -> Exception:
        """The failed rank's error, as the single-process run would have raised it."""
        if failure is not None:
            kind = getattr(errors, str(failure.get("type")), None)
            if isinstance(kind, type) and issubclass(kind, TrainingError):
                return kind(failure["message"])
            return RuntimeError(
                f"training process {failure['rank']} failed: {failure['type']}: "
                f"{failure['message']}"
            )
        rank = next(i for i, code in enumerate(codes) if code not in (None, 0))
        return RuntimeError(
            f"training process {rank} exited with status {codes[rank]} (see the worker log; "
            "a negative status is the signal that ended it, e.g. -9: killed, often for memory)"
        )


# --- one rank (a subprocess) ----------------------------------------------------------------


def die_with_parent(parent: int) -> None:
    """Let the kernel SIGKILL this process when the coordinator dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(EXIT_CRASHED)


def watch_stdin(stop: threading.Event) -> None:
    """A stop line, or the end of stdin (the coordinator is gone), asks this rank to stop."""

    def read() -> None:
        # Raw reads: a daemon thread blocked in a buffered reader aborts interpreter shutdown.
        seen = b""
        while STOP_LINE not in seen:
            chunk = os.read(sys.stdin.fileno(), 64)
            if not chunk:
                break
            seen = seen[-64:] + chunk
        stop.set()

    threading.Thread(target=read, daemon=True).start()


def rank_main(spec_path: str) -> int:
    """Entry point of one rank: train with a :class:`~trainer.train.Parallel` context."""
    die_with_parent(int(os.environ[PARENT_ENV]))
    channel = os.fdopen(int(os.environ[CHANNEL_ENV]), "w", buffering=1)
    stop = threading.Event()
    watch_stdin(stop)
    # Ctrl-C reaches the whole process group: the coordinator decides, through stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message, default=str) + "\n")

    try:
        spec = json.loads(Path(spec_path).read_text())
        result = run_rank(spec, stop, send)
        if result is not None:
            send({"kind": "result", **result})
        return 0
    except TrainingError as error:
        send({"kind": "error", "type": type(error).__name__, "message": str(error)})
        return EXIT_REFUSED
    except Exception as error:
        logger.exception("training process %s failed", os.environ.get("RANK"))
        send({"kind": "error", "type": type(error).__name__, "message": str(error)})
        return EXIT_CRASHED
    finally:
        channel.close()


def run_rank(spec: dict[str, Any], stop: threading.Event, send: Any) -> dict[str, Any] | None:
    """Join the process group, train, and return the result (rank 0) or None."""
    import torch
    import torch.distributed as dist
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    rank, processes = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    config = JobConfig.from_dict(spec["config"])
    hardware = pick_hardware(config.precision)
    cpu = hardware.device == "cpu"
    backend = "gloo" if cpu else "nccl"
    if not cpu:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend,
        init_method=f"file://{spec['rendezvous']}",
        rank=rank,
        world_size=processes,
        timeout=COLLECTIVE_TIMEOUT,
    )
    try:
        accelerator = Accelerator(
            cpu=cpu,
            mixed_precision={"fp32": "no"}.get(hardware.precision, hardware.precision),
            step_scheduler_with_optimizer=False,  # our schedule counts optimizer steps
            kwargs_handlers=[InitProcessGroupKwargs(backend=backend)],
        )

        def agreed_stop() -> bool:
            """True on every rank at the same step once any rank was asked to stop."""
            if stop.is_set():
                accelerator.set_trigger()
            return bool(accelerator.check_trigger())

        run = setup(
            config,
            dataset=from_source(spec["dataset"]),
            output_dir=Path(spec["output_dir"]),
            eval_dataset=from_source(spec["eval_dataset"]),
            resume=bool(spec["resume"]),
            on_progress=lambda event: send({"kind": "progress", "event": event}),
            should_stop=agreed_stop,
            parallel=Parallel(accelerator, rank, processes, local_rank),
        )
        result = main(run, resume=bool(spec["resume"]))
        accelerator.wait_for_everyone()  # rank 0 has published the adapter
        if rank:
            return None
        adapter = str(result.adapter_dir) if result.adapter_dir else None
        return {"status": result.status, "adapter_dir": adapter, "report": result.report}
    finally:
        dist.destroy_process_group()


def from_source(source: dict[str, Any] | None) -> Any:
    if source is None:
        return None
    return source["path"] if "path" in source else source["records"]


if __name__ == "__main__":
    sys.exit(rank_main(sys.argv[1]))
