"""Two-stage fine-tuning from one config: stage 1 -> features from stage 1's SignHiera -> stage 2.

    python -m slt train --config chain.json [--resume]

A chain config holds the two stages' TrainConfigs and the video manifests the features are extracted from::

    {"run_dir": "runs/how2sign-2stage",
     "videos": {"train": "how2sign_train.tsv", "val": "how2sign_val.tsv", "test": "how2sign_test.tsv"},
     "nproc_per_node": 8,
     "stage1": {"train_features": "crops/train", "val_features": "crops/val", "signhiera_checkpoint": "...",
                "lr": 1e-5, ...},
     "stage2": {"epochs": 20, "lr": 5e-5, ...}}

1. ``stage1``: recipe ``signhiera-finetune`` on crop caches (its ``train_features`` / ``val_features``), run dir
   ``<run_dir>/stage1``; it exports its best epoch's ``signhiera.pt`` and ``encoder.pt``.
2. ``features/<split>``: ``extract-features`` of every manifest in ``videos`` with ``stage1/signhiera.pt`` and the
   preprocessing stage 1's crop cache was built with (its face detector, detect-every, centre-crop fallback).
3. ``stage2``: recipe ``sonar-finetune`` on ``features/train`` and ``features/val``, run dir ``<run_dir>/stage2``,
   starting from stage 1's encoder unless ``stage2.base_encoder`` is given (null: the official zero-shot one).
   Fields stage 2 leaves out that the two stages must share (decoder, tokenizer, asset_cards, decoder_backend,
   target_lang, device, seed) are taken from stage 1.
4. ``evaluate/<split>``: stage 2 scored on every other split of ``videos`` (e.g. test), as ``python -m slt evaluate
   --run`` scores a run (``<run_dir>/evaluate/<split>_results.json``).
5. ``<run_dir>/system.json`` (slt.modelset.write_system): stage 1's SignHiera with stage 2's encoder, a model-set entry.

Every step runs as its own ``python -m slt`` process (under ``torch.distributed.run`` with ``nproc_per_node`` > 1),
exactly the command a user would type, so each keeps its own guarantees (exact resume, DDP, sharded extraction).
The chain's config is checked whole before anything runs (one error naming every bad field of both stages). Where
the chain is lives in ``<run_dir>/status.json`` (``stage``; read it with slt.train.rundir.read_status) and
``<run_dir>/train.log``. ``--resume`` skips finished steps and resumes the interrupted one from its last.pt; a
step that fails stops the chain with an error naming it. SIGTERM/SIGINT are passed to the running step (a training
stage checkpoints first), and the chain reports "stopped".
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slt.errors import TrainingError
from slt.modelset import write_system
from slt.runtime import dist_info, on_stop_signals
from slt.train.config import TrainConfig, _field_problem, read_config_mapping
from slt.train.rundir import RunDir, read_status
from slt.utils.io import atomic_write_json

log = logging.getLogger("slt.train")

CHAIN_FILE = "chain.json"
STAGE1_RECIPE, STAGE2_RECIPE = "signhiera-finetune", "sonar-finetune"
# Stage-2 fields that default to stage 1's value: the two stages decode with one decoder on one device.
SHARED_FIELDS = ("decoder", "tokenizer", "asset_cards", "decoder_backend", "target_lang", "device", "seed")
# Fields the chain sets; a config that sets them is refused (it would be silently overridden).
CHAIN_OWNED = {"stage1": ("run_dir",), "stage2": ("run_dir", "train_features", "val_features")}
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ChainConfig:
    """A two-stage run: the chain's own settings and the two stages' TrainConfigs (run dirs, stage-2 features and
    unset stage-2 fields already filled in by :meth:`from_dict`)."""

    stage1: TrainConfig
    stage2: TrainConfig
    videos: dict[str, str] = field(default_factory=dict)  # split -> video manifest; train and val required
    run_dir: str = "runs/chain"
    video_root: str | None = None  # folder relative video paths are in (default: each manifest's folder)
    nproc_per_node: int = 1  # > 1: each step under torch.distributed.run (DDP training, sharded extraction)
    extract_workers: int = 2  # extract-features' preprocessing processes
    extract_batch_size: int = 4  # extract-features' clips per forward pass
    description: str = ""  # system.json's description (default: one naming the chain)

    @property
    def root(self) -> Path:
        return Path(self.run_dir)

    def features_dir(self, split: str) -> Path:
        return self.root / "features" / split

    def to_dict(self) -> dict[str, Any]:
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("stage1", "stage2")}
        return json.loads(json.dumps({**own, "stage1": self.stage1.to_dict(), "stage2": self.stage2.to_dict()}))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "chain config") -> ChainConfig:
        """Check everything (both stages included) and raise one TrainingError listing every problem."""
        problems: list[str] = []
        own = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("stage1", "stage2")}
        unknown = sorted(set(data) - set(own) - {"stage1", "stage2"})
        if unknown:
            problems.append(f"unknown field(s) {unknown}; a chain config has {sorted(own)} and the sections "
                            "stage1 and stage2 (TrainConfig fields)")
        values = {name: data[name] for name in own if name in data and name != "videos"}
        hints = {"run_dir": str, "video_root": str | None, "nproc_per_node": int, "extract_workers": int,
                 "extract_batch_size": int, "description": str}
        for name, hint in hints.items():
            if name in values:
                problem = _field_problem(name, values[name], hint)
                if problem is None and name != "description" and isinstance(values[name], str) \
                        and not values[name].strip():
                    problem = f"{name} must not be empty"
                if problem is None and isinstance(values[name], int) and \
                        values[name] < (0 if name == "extract_workers" else 1):
                    problem = f"{name} must be >= {0 if name == 'extract_workers' else 1}, got {values[name]}"
                if problem:
                    problems.append(problem)
        problems += _videos_problems(data.get("videos"))
        run_dir = values.get("run_dir", "runs/chain")
        root = Path(run_dir) if isinstance(run_dir, str) and run_dir.strip() else Path("runs/chain")
        stage1 = _stage("stage1", data.get("stage1"), STAGE1_RECIPE, {"run_dir": str(root / "stage1")}, problems)
        filled2 = {"run_dir": str(root / "stage2"),
                   "train_features": str(root / "features" / "train" / "features.tsv"),
                   "val_features": str(root / "features" / "val" / "features.tsv")}
        section2 = data.get("stage2", {})  # left out: every stage-2 default
        if isinstance(section2, dict):
            if "base_encoder" not in section2:
                filled2["base_encoder"] = str(root / "stage1" / "encoder.pt")
            if stage1 is not None:
                filled2.update({name: getattr(stage1, name) for name in SHARED_FIELDS if name not in section2})
        stage2 = _stage("stage2", section2, STAGE2_RECIPE, filled2, problems)
        if stage1 is not None:
            for name in ("train_features", "val_features", "signhiera_checkpoint"):
                if not getattr(stage1, name):
                    what = "the SignHiera checkpoint to adapt" if name == "signhiera_checkpoint" else \
                        "a crop cache folder (python -m slt crop-cache)"
                    problems.append(f"stage1.{name} is required: {what}")
        if stage2 is not None and stage2.unfreeze_signhiera_layers:
            problems.append("stage2.unfreeze_signhiera_layers must be 0: stage 2 trains on features (stage 1 is "
                            "the one that adapts SignHiera)")
        if problems:
            raise TrainingError(f"Bad two-stage config ({source}), {len(problems)} problem(s) to fix: "
                                + "; ".join(problems))
        return cls(stage1=stage1, stage2=stage2, videos=dict(data["videos"]), **values)

    @classmethod
    def load(cls, path: str | Path) -> ChainConfig:
        return cls.from_dict(read_config_mapping(path), source=str(path))


def is_chain_config(data: dict[str, Any]) -> bool:
    """Whether a config mapping describes a two-stage chain (it has a stage1 or stage2 section)."""
    return "stage1" in data or "stage2" in data


def _videos_problems(videos: Any) -> list[str]:
    if not isinstance(videos, dict):
        return [f"videos must map split names to video manifests, e.g. {{\"train\": \"train.tsv\", \"val\": "
                f"\"val.tsv\"}}, got {videos!r}"]
    problems = [f"videos.{split} is required (stage 2 trains on its features)" for split in ("train", "val")
                if split not in videos]
    for split, manifest in videos.items():
        if not isinstance(split, str) or not _SPLIT.match(split):
            problems.append(f"videos: split name {split!r} must be letters, digits, '_' or '-'")
        if not isinstance(manifest, str) or not manifest.strip():
            problems.append(f"videos.{split} must be a manifest path, got {manifest!r}")
    return problems


def _stage(name: str, section: Any, recipe: str, filled: dict[str, Any], problems: list[str]) -> TrainConfig | None:
    """One stage's TrainConfig with the chain's fields filled in; its problems appended as `name.field ...`."""
    if not isinstance(section, dict):
        problems.append(f"{name} must be a mapping of TrainConfig fields, got {section!r}")
        return None
    owned = [key for key in CHAIN_OWNED[name] if key in section]
    if owned:
        problems.append(f"{name} must not set {owned}: the chain sets them (inside run_dir)")
    if section.get("recipe", recipe) != recipe:
        problems.append(f"{name}.recipe must be {recipe!r} (or left out), got {section['recipe']!r}")
    values = {**{k: v for k, v in section.items() if k not in owned}, **filled, "recipe": recipe}
    try:
        cfg = TrainConfig.from_dict(values, source=name)
    except TrainingError as error:
        problems.append(str(error))
        return None
    problems.extend(f"{name}.{problem}" for problem in cfg.problems())
    return cfg


# ---------------------------------------------------------------------------------------------- running
class ChainStopped(Exception):
    """Internal: a signal (or a stage that stopped itself) ends the chain; --resume continues it."""


class Chain:
    """Runs a ChainConfig step by step; `run()` returns a summary ({"state": finished | stopped, ...})."""

    def __init__(self, cfg: ChainConfig, resume: bool = False, python: str = sys.executable):
        self.cfg, self.resume, self.python = cfg, resume, python
        self.root = cfg.root
        self.child: subprocess.Popen | None = None
        self.stop_signal: int | None = None
        self.stage = "stage1"

    # -------------------------------------------------------------------------------------------- steps
    def run(self) -> dict[str, Any]:
        if dist_info().enabled:
            raise TrainingError("run the two-stage chain as one process, not under torchrun: its nproc_per_node "
                                "launches each step under torch.distributed.run")
        self._check_run_dir()
        self.run_dir = RunDir(self.root)
        atomic_write_json(self.root / CHAIN_FILE, self.cfg.to_dict())
        done: list[str] = []
        try:
            with self._signals():
                for stage, step in self._steps():
                    self.stage = stage
                    if step():
                        done.append(stage)
                    if self.stop_signal is not None:
                        raise ChainStopped(f"stopped by {signal.Signals(self.stop_signal).name} after {stage}")
            system = write_system(
                self.root, self.root / "stage1" / "signhiera.pt", self.root / "stage2" / "encoder.pt",
                self._crop_preprocess().detector, self.cfg.description or
                f"two-stage fine-tuning ({self.root.name}): SignHiera adapted from video (stage 1), SONAR encoder "
                "fine-tuned on its features (stage 2)")
            message = f"finished: {system}"
            log.info("two-stage chain %s", message)
            self.run_dir.set_status("finished", stage="done", message=message)
            return {"state": "finished", "system": str(system), "ran": done, **self._results()}
        except ChainStopped as stop:
            message = f"{stop}; continue with --resume"
            log.warning("two-stage chain stopped at %s: %s", self.stage, message)
            self.run_dir.set_status("stopped", stage=self.stage, message=message)
            return {"state": "stopped", "stage": self.stage, "reason": message, "ran": done}
        except BaseException as error:
            self.run_dir.set_status("failed", stage=self.stage, message=f"{type(error).__name__}: {error}")
            raise
        finally:
            self.run_dir.close()

    def _steps(self):
        yield "stage1", lambda: self._train("stage1", self.cfg.stage1)
        for split in self.cfg.videos:
            yield f"features/{split}", lambda split=split: self._extract(split)
        yield "stage2", lambda: self._train("stage2", self.cfg.stage2)
        for split in self.cfg.videos:
            if split not in ("train", "val"):
                yield f"evaluate/{split}", lambda split=split: self._evaluate(split)

    def _check_run_dir(self) -> None:
        saved_path = self.root / CHAIN_FILE
        if not saved_path.exists():
            return
        if not self.resume:
            raise TrainingError(f"{self.root} already holds a two-stage run ({CHAIN_FILE}); use --resume to "
                                "continue it or choose another run_dir")
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        current = self.cfg.to_dict()
        for stage in ("stage1", "stage2"):
            started = (self.root / stage / "config.json").exists()
            changed = sorted(k for k in set(current[stage]) | set(saved.get(stage, {}))
                             if current[stage].get(k) != saved.get(stage, {}).get(k))
            if started and changed:
                raise TrainingError(f"{stage} of {self.root} has started with other settings (changed: {changed}); "
                                    "restore them to resume, or choose another run_dir")
        changed = sorted(k for k in ("videos", "video_root") if current[k] != saved.get(k))
        if changed and (self.root / "features").exists():
            raise TrainingError(f"the features of {self.root} were extracted for other {changed}; restore them to "
                                "resume, or choose another run_dir")

    def _train(self, stage: str, cfg: TrainConfig) -> bool:
        run_dir = Path(cfg.run_dir)
        if read_status(run_dir).get("state") == "finished" and (run_dir / "encoder.pt").is_file():
            log.info("%s: finished before (%s), skipped", stage, run_dir)
            return False
        config_path = self.root / "configs" / f"{stage}.json"
        cfg.save(config_path)
        resume = (run_dir / "last.pt").exists()
        self.run_dir.set_status("running", stage=stage, message=f"{stage} ({cfg.recipe}) "
                                f"{'resumed' if resume else 'started'}")
        log.info("%s: %s %s", stage, "resuming" if resume else "training", run_dir)
        self._launch(stage, ["train", "--config", str(config_path), *(["--resume"] if resume else [])], True)
        if read_status(run_dir).get("state") != "finished":
            raise TrainingError(f"two-stage chain, {stage} ({cfg.recipe}, {run_dir}) ended without finishing: "
                                f"{read_status(run_dir).get('message', 'no status.json')}; fix it and continue with "
                                "--resume")
        return True

    def _extract(self, split: str) -> bool:
        out = self.cfg.features_dir(split)
        signhiera = self.root / "stage1" / "signhiera.pt"
        if _features_done(out, signhiera):
            log.info("features/%s: extracted before with stage 1's SignHiera (%s), skipped", split, out)
            return False
        pre = self._crop_preprocess()
        self.run_dir.set_status("running", stage=f"features/{split}", message=f"extracting {split} features")
        argv = ["extract-features", "--manifest", self.cfg.videos[split], "--out", str(out), "--signhiera",
                str(signhiera), "--detector", pre.detector, "--detect-every", str(pre.detect_every),
                "--workers", str(self.cfg.extract_workers), "--batch-size", str(self.cfg.extract_batch_size),
                "--device", self.cfg.stage1.device]
        argv += ["--center-crop-fallback"] if pre.center_crop_fallback else []
        argv += ["--max-duration", str(pre.max_duration_s)] if pre.max_duration_s is not None else []
        argv += ["--video-root", self.cfg.video_root] if self.cfg.video_root else []
        self._launch(f"features/{split}", argv, True)
        if not (out / "features.tsv").is_file():
            raise TrainingError(f"two-stage chain, features/{split}: extract-features wrote no {out / 'features.tsv'}")
        return True

    def _evaluate(self, split: str) -> bool:
        out = self.root / "evaluate"
        results = out / ("test_results.json" if split == "test" else f"{split}_results.json")
        if results.is_file() and results.stat().st_mtime >= (self.root / "stage2" / "encoder.pt").stat().st_mtime:
            log.info("evaluate/%s: done before (%s), skipped", split, results)
            return False
        self.run_dir.set_status("running", stage=f"evaluate/{split}", message=f"evaluating stage 2 on {split}")
        self._launch(f"evaluate/{split}", ["evaluate", "--run", str(self.root / "stage2"), "--manifest",
                                           str(self.cfg.features_dir(split) / "features.tsv"), "--out", str(out),
                                           "--split-name", split], False)
        return True

    def _results(self) -> dict[str, Any]:
        """Best validation BLEU of each stage and the scores of the evaluated splits."""
        summary: dict[str, Any] = {}
        for stage in ("stage1", "stage2"):
            summary[f"{stage}_best_bleu"] = read_status(self.root / stage).get("best_bleu")
        for split in self.cfg.videos:
            if split in ("train", "val"):
                continue
            path = self.root / "evaluate" / ("test_results.json" if split == "test" else f"{split}_results.json")
            with contextlib.suppress(OSError, ValueError):
                summary[f"{split}_bleu"] = json.loads(path.read_text(encoding="utf-8")).get("bleu")
        return summary

    def _crop_preprocess(self):
        from slt.data.crop_cache import CropCache

        return CropCache(self.cfg.stage1.train_features).preprocess

    # -------------------------------------------------------------------------------------------- processes
    def _command(self, argv: list[str], distributed: bool) -> list[str]:
        if distributed and self.cfg.nproc_per_node > 1:
            return [self.python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                    str(self.cfg.nproc_per_node), "-m", "slt", *argv]
        return [self.python, "-m", "slt", *argv]

    def _launch(self, stage: str, argv: list[str], distributed: bool) -> None:
        """Run one step's command; its stderr is passed through and its last lines kept for the error message."""
        command = self._command(argv, distributed)
        log.info("%s: %s", stage, " ".join(command))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO_ROOT),
                                                                         os.environ.get("PYTHONPATH")]))}
        tail: collections.deque[str] = collections.deque(maxlen=20)
        self.child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace", env=env)
        try:
            for line in self.child.stderr:
                sys.stderr.write(line)
                tail.append(line.rstrip())
            code = self.child.wait()
        finally:
            self.child = None
        if self.stop_signal is not None or code == 3:
            raise ChainStopped(f"{stage} stopped"
                               + (f" by {signal.Signals(self.stop_signal).name}" if self.stop_signal else ""))
        if code != 0:
            errors = [line for line in tail if line.startswith("error:")]
            cause = errors[-1] if errors else next((line for line in reversed(tail) if line.strip()), "no output")
            raise TrainingError(f"two-stage chain, step {stage} failed (exit code {code}): {cause}; fix it and "
                                f"continue with --resume (finished steps are skipped)")

    def _signals(self):
        def handler(signum, _frame):
            self.stop_signal = signum
            log.warning("received %s: passing it to the running step (%s)", signal.Signals(signum).name, self.stage)
            if self.child is not None and self.child.poll() is None:
                self.child.send_signal(signum)

        return on_stop_signals(handler)


def _features_done(out: Path, signhiera: Path) -> bool:
    """Whether `out` holds a finished extraction (features.tsv) made with exactly this SignHiera (its sha256)."""
    if not (out / "features.tsv").is_file():
        return False
    from slt.data.extract_state import CONFIG_NAME, file_sha256

    try:
        saved = json.loads((out / CONFIG_NAME).read_text(encoding="utf-8"))["signhiera"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return saved == file_sha256(signhiera)
