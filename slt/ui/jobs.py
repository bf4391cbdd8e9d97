"""Training jobs launched from the app: `python -m slt train` subprocesses and a registry that outlives the app.

Each job is one run directory under the runs dir. The registry (`<runs>/jobs.json`, written atomically) records
what was launched, so the history survives app restarts and page reloads; a job's live state comes from its
process (while this app holds it) or from the pid and the trainer's own `status.json`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slt.errors import JobError
from slt.registry import REPO_ROOT
from slt.train.config import TrainConfig
from slt.train.rundir import read_status
from slt.utils.io import atomic_write_json

REGISTRY_FILE = "jobs.json"
CONSOLE_LOG = "console.log"  # the process's stdout/stderr; the trainer itself also writes train.log
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class Job:
    """One launched run (a fresh start, possibly resumed later)."""

    id: str
    run_dir: str
    command: list[str]
    pid: int
    started_at: float
    resumes: int = 0
    history: list[dict] = field(default_factory=list)  # earlier launches of this run: {pid, started_at, command}


def train_command(config_path: Path, resume: bool = False) -> list[str]:
    """The exact argv of a training subprocess (no shell)."""
    command = [sys.executable, "-m", "slt", "train", "--config", str(config_path)]
    return command + ["--resume"] if resume else command


def _pid_alive(pid: int) -> bool:
    """True when `pid` is a live `slt train` process (not a zombie, not an unrelated process that reused the pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"slt" in cmdline and b"train" in cmdline


def _rounded(value, digits: int = 2):
    return round(value, digits) if isinstance(value, float) else value


class JobManager:
    """Starts, stops, resumes and lists training jobs; at most `max_running` run at once."""

    def __init__(self, runs_dir: Path, max_running: int = 1):
        self.runs_dir = Path(runs_dir)
        self.max_running = max_running
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------------ registry
    @property
    def registry_path(self) -> Path:
        return self.runs_dir / REGISTRY_FILE

    def _read(self) -> dict[str, Job]:
        try:
            data = json.loads(self.registry_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as error:
            raise JobError(f"the jobs registry {self.registry_path} is unreadable ({error}); "
                           "move it aside to start afresh") from error
        return {item["id"]: Job(**item) for item in data.get("jobs", [])}

    def _write(self, jobs: dict[str, Job]) -> None:
        atomic_write_json(self.registry_path, {"jobs": [asdict(job) for job in jobs.values()]})

    def get(self, job_id: str) -> Job:
        jobs = self._read()
        if job_id not in jobs:
            raise JobError(f"no training job named '{job_id}' in {self.registry_path}")
        return jobs[job_id]

    # ------------------------------------------------------------------ state
    def state(self, job: Job) -> str:
        """running | finished | stopped | failed | exited (code N) | lost."""
        proc = self._procs.get(job.id)
        if proc is not None and proc.pid == job.pid:
            if proc.poll() is None:
                return "running"
        elif _pid_alive(job.pid):
            return "running"  # launched by an earlier app process that is gone; the trainer still runs
        status = self.status(job)
        if status.get("state") in ("finished", "stopped", "failed") and status.get("pid") == job.pid:
            return status["state"]
        if proc is not None and proc.returncode is not None:
            return f"exited (code {proc.returncode})"
        return status.get("state", "lost") if status else "lost"

    def status(self, job: Job) -> dict:
        """The run's status.json; a "running" whose process was killed reads as "stopped" (see read_status)."""
        return read_status(job.run_dir)

    def running(self) -> list[Job]:
        return [job for job in self._read().values() if self.state(job) == "running"]

    def rows(self) -> list[dict]:
        """The history table: newest first. `epochs_done` counts finished epochs (the trainer's status.json holds the
        epoch in progress, one more than those done)."""
        out = []
        for job in sorted(self._read().values(), key=lambda j: j.started_at, reverse=True):
            status = self.status(job)
            epoch = status.get("epoch")
            out.append({
                "job": job.id, "state": self.state(job),
                "epochs_done": epoch - 1 if isinstance(epoch, int) and epoch >= 1 else None, "step": status.get("step"),
                "best_bleu": _rounded(status.get("best_bleu")),
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.started_at)), "resumes": job.resumes,
            })
        return out

    # ------------------------------------------------------------------ actions
    def prepare(self, cfg: TrainConfig, name: str) -> tuple[Path, list[str]]:
        """Validate a new run (name, config) and return its config path and command; nothing is written."""
        if not _RUN_NAME.match(name or ""):
            raise JobError(f"run name {name!r} must be 1-64 letters, digits, '.', '_' or '-' (no slashes)")
        cfg.validate()
        run_dir = self.runs_dir / name
        config_path = run_dir / "config.json"
        return config_path, train_command(config_path)

    def start(self, cfg: TrainConfig, name: str) -> Job:
        """Write the run's config.json and launch the trainer in its own process group."""
        with self._lock:
            config_path, command = self.prepare(cfg, name)
            run_dir = config_path.parent
            if name in self._read() or run_dir.exists():
                raise JobError(f"a run named '{name}' already exists in {self.runs_dir}; "
                               "resume it or pick another name")
            self._check_capacity()
            cfg.run_dir = str(run_dir)
            cfg.save(config_path)
            job = Job(id=name, run_dir=str(run_dir), command=command, pid=0, started_at=time.time())
            return self._launch(job)

    def resume(self, job_id: str) -> Job:
        """Continue a stopped/failed run from its last.pt with `--resume`."""
        with self._lock:
            job = self.get(job_id)
            state = self.state(job)
            if state == "running":
                raise JobError(f"job '{job_id}' is still running")
            if state == "finished":
                raise JobError(f"job '{job_id}' already finished; start a new run to train further")
            if not (Path(job.run_dir) / "last.pt").exists():
                raise JobError(f"job '{job_id}' has no checkpoint (last.pt) to resume from; start it afresh")
            self._check_capacity()
            job.history.append({"pid": job.pid, "started_at": job.started_at, "command": job.command})
            job.command = train_command(Path(job.run_dir) / "config.json", resume=True)
            job.resumes += 1
            job.started_at = time.time()
            return self._launch(job)

    def stop(self, job_id: str, wait_s: float = 0.0) -> str:
        """SIGTERM the job's process group: the trainer checkpoints last.pt and writes status 'stopped'."""
        with self._lock:
            job = self.get(job_id)
            if self.state(job) != "running":
                raise JobError(f"job '{job_id}' is not running (state: {self.state(job)})")
            try:
                os.killpg(job.pid, signal.SIGTERM)  # the job leads its own group (start_new_session)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and self.state(job) == "running":
            time.sleep(0.2)
        return self.state(job)

    def _check_capacity(self) -> None:
        running = self.running()
        if len(running) >= self.max_running:
            names = ", ".join(job.id for job in running)
            raise JobError(f"{len(running)} training job(s) already running ({names}); the limit is {self.max_running} "
                           "(SLT_MAX_TRAIN_JOBS). Stop one or wait for it to finish.")

    def _launch(self, job: Job) -> Job:
        run_dir = Path(job.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with (run_dir / CONSOLE_LOG).open("ab") as console:
            console.write(f"\n$ {' '.join(job.command)}\n".encode())
            console.flush()
            proc = subprocess.Popen(job.command, cwd=REPO_ROOT, stdout=console, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        job.pid = proc.pid
        self._procs[job.id] = proc
        jobs = self._read()
        jobs[job.id] = job
        self._write(jobs)
        return job

    def log_tail(self, job_id: str, lines: int = 40) -> str:
        """The last lines of the job's console output (the trainer's log lines and any traceback)."""
        path = Path(self.get(job_id).run_dir) / CONSOLE_LOG
        if not path.exists():
            return ""
        with path.open("rb") as handle:  # read only the end: logs of long runs grow large
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])
