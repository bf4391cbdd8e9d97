"""`python -m slt tune`: hyperparameter search with Optuna, and training the best configuration found.

Each trial trains in this process with the shared Trainer (one run directory per trial under --out-dir);
the validation BLEU of every evaluated epoch is reported to Optuna, and a MedianPruner stops trials that
fall behind. The study lives in --storage (e.g. sqlite:///study.db): running the command again with the same
--study-name continues it (trial numbers keep counting). Outputs in --out-dir: importance.html, history.html,
intermediate.html (plotly, from optuna.visualization) and best_config.json.

    python -m slt tune --config base.yaml --storage sqlite:///study.db --study-name bridge --n-trials 30
    python -m slt tune --train-best --storage sqlite:///study.db --study-name bridge

Start-up time: Optuna and the trainer (torch, the recipes) are imported inside the functions that use them, so
`--help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from slt.errors import TrainingError
from slt.train.config import TrainConfig, add_config_arguments, config_from_args
from slt.train.tune_space import SearchParam, apply_params, build_space
from slt.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("slt.train")

BASE_CONFIG_ATTR = "base_config"  # study user attribute: the full-length config the trials derive from
OUT_DIR_ATTR = "out_dir"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON or YAML file with the base TrainConfig (flags override it)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL, e.g. sqlite:///study.db (default: in memory, not resumable)")
    parser.add_argument("--study-name", default="slt-tune", help="study to create or continue")
    parser.add_argument("--n-trials", type=int, default=20, help="trials to run in this invocation")
    parser.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    parser.add_argument("--out-dir", default=None,
                        help="trial run dirs (trial_NNNN; --run-dir is not used for trials), plots and "
                             "best_config.json (default: runs/tune/<study-name>)")
    parser.add_argument("--search", action="append", default=[], metavar="NAME=KIND:ARGS",
                        help="search one field: log:LOW:HIGH, float:LOW:HIGH, int:LOW:HIGH or choice:A,B,C "
                             "(repeatable; replaces that field's default range)")
    parser.add_argument("--no-default-space", action="store_true",
                        help="search only the --search fields (default: lr, batch size, warmup, label smoothing, "
                             "dropout and the recipe's own sizes)")
    parser.add_argument("--trial-epochs", type=int, default=None,
                        help="epochs per trial (default: the config's epochs); --train-best uses the full epochs")
    parser.add_argument("--pruner-startup-trials", type=int, default=2,
                        help="trials that run to the end before pruning starts")
    parser.add_argument("--pruner-warmup-epochs", type=int, default=1,
                        help="epochs of a trial that are never pruned")
    parser.add_argument("--sampler-seed", type=int, default=0)
    parser.add_argument("--enqueue", action="append", default=[], metavar="JSON",
                        help='try these values first, e.g. \'{"lr": 3e-4, "batch_size": 8}\' (repeatable)')
    parser.add_argument("--train-best", action="store_true",
                        help="train the study's best configuration for the full epochs (into --run-dir if given, "
                             "else <out-dir>/best) instead of running trials")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    import optuna  # heavy import only once the command is known

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.train_best:
        summary = train_best(args)
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
        return 0 if summary["state"] == "finished" else 3
    study = run_study(args)
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    print(json.dumps({"study": study.study_name, "trials": len(study.trials), "complete": len(finished),
                      "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
                      "best_bleu": study.best_value if finished else None,
                      "best_params": study.best_params if finished else None}))
    return 0


# ------------------------------------------------------------------------------------------------ study
def _storage(url: str | None):
    """RDB storage with heartbeats: a trial left RUNNING by a killed process is marked failed and retried
    once when the study is continued."""
    import optuna

    if url is None:
        return None
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise TrainingError(f"--storage must be a database URL such as sqlite:///study.db, got {url!r}")
    import sqlalchemy.exc  # an Optuna dependency

    with warnings.catch_warnings():  # heartbeats are flagged "experimental" by Optuna; they are what we want
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=60, grace_period=180,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        except sqlalchemy.exc.SQLAlchemyError as error:  # e.g. the database file's folder is missing or read-only
            cause = getattr(error, "orig", None) or error
            raise TrainingError(f"cannot open the study database {url} ({cause}); check that the folder of the "
                                "database file exists and is writable, or give another --storage") from error


def run_study(args: argparse.Namespace):
    """Create or continue the study and run `--n-trials` more trials; write plots and best_config.json."""
    import optuna

    if args.n_trials < 1:
        raise TrainingError(f"--n-trials must be >= 1, got {args.n_trials}")
    base = config_from_args(args)
    space = build_space(base.recipe, args.search, use_defaults=not args.no_default_space)
    out_dir = Path(args.out_dir or Path("runs") / "tune" / args.study_name)
    storage = _storage(args.storage)
    study = optuna.create_study(
        study_name=args.study_name, storage=storage, load_if_exists=True, direction="maximize",
        # Seed offset by the trials already there, so a continued study does not replay the first samples.
        sampler=optuna.samplers.TPESampler(seed=args.sampler_seed + _n_trials(study_name=args.study_name,
                                                                              storage=storage)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=args.pruner_startup_trials,
                                           # steps are 1-based epochs: warm-up N protects epochs 1..N
                                           n_warmup_steps=args.pruner_warmup_epochs + 1))
    study.set_user_attr(BASE_CONFIG_ATTR, base.to_dict())
    study.set_user_attr(OUT_DIR_ATTR, str(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    for text in args.enqueue:
        study.enqueue_trial(_parse_enqueue(text, space), skip_if_exists=True)
    log.info("study %r: %d trials so far; searching %s", args.study_name, len(study.trials),
             [p.spec() for p in space])
    objective = _objective(base, space, out_dir, args.trial_epochs)
    study.optimize(objective, n_trials=args.n_trials, timeout=args.timeout, catch=(TrainingError,),
                   gc_after_trial=True)
    write_reports(study, out_dir)
    return study


def _parse_enqueue(text: str, space: list[SearchParam]) -> dict[str, Any]:
    """`--enqueue` JSON -> params; every key must be a searched field."""
    try:
        params = json.loads(text)
    except json.JSONDecodeError as error:
        raise TrainingError(f"--enqueue {text!r} is not JSON: {error}") from None
    names = {p.name for p in space}
    if not isinstance(params, dict) or not set(params) <= names:
        raise TrainingError(f"--enqueue {text!r}: expected an object whose keys are searched fields {sorted(names)}")
    return params


def _n_trials(study_name: str, storage) -> int:
    import optuna

    if storage is None:
        return 0
    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:  # no such study yet
        return 0


def _objective(base: TrainConfig, space: list[SearchParam], out_dir: Path, trial_epochs: int | None):
    import optuna

    def objective(trial) -> float:
        params = {p.name: p.suggest(trial) for p in space}
        data = apply_params(base.to_dict(), params)
        data["run_dir"] = str(out_dir / f"trial_{trial.number:04d}")
        if trial_epochs:
            data["epochs"] = trial_epochs
        cfg = TrainConfig.from_dict(data, source=f"trial {trial.number}").validate()
        trial.set_user_attr("run_dir", cfg.run_dir)
        summary = make_pruning_trainer(cfg, trial).fit()
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        if summary["state"] == "stopped":
            if trial.user_attrs.get("pruned"):
                raise optuna.TrialPruned(summary["reason"])
            trial.study.stop()  # SIGINT/SIGTERM: the user wants the whole search to end, not the next trial
            raise TrainingError(f"trial {trial.number} {summary['reason']}")
        return float(summary["best_bleu"])

    return objective


def pruning_callback(trial):
    """An `on_evaluated` callback: report each evaluated epoch's BLEU to `trial`; stop the run when Optuna
    prunes it (the trial is marked with the user attribute "pruned")."""
    from slt.train.trainer import StopTraining

    def on_evaluated(epoch: int, scores: dict[str, float]) -> None:
        trial.report(scores["bleu"], step=epoch)
        if trial.should_prune():
            trial.set_user_attr("pruned", True)
            message = f"pruned by Optuna after epoch {epoch} (BLEU {scores['bleu']:.2f} below the median)"
            log.info("trial %d: %s", trial.number, message)
            raise StopTraining(message)

    return on_evaluated


def make_pruning_trainer(cfg: TrainConfig, trial):
    """A Trainer for `cfg` that reports to `trial` and stops when Optuna prunes it."""
    from slt.train.trainer import Trainer

    return Trainer(cfg, on_evaluated=pruning_callback(trial))


# ------------------------------------------------------------------------------------------------ reports
def best_config(study) -> TrainConfig:
    """The study's base config with the best trial's values (full epochs); TrainingError if none finished."""
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        raise TrainingError(f"study {study.study_name!r} has no completed trial yet ({len(study.trials)} trials); "
                            "run more trials first")
    base = study.user_attrs.get(BASE_CONFIG_ATTR)
    if base is None:
        raise TrainingError(f"study {study.study_name!r} was not created by `python -m slt tune` (no base config)")
    best = study.best_trial
    data = apply_params(base, best.params)
    data["run_dir"] = str(Path(study.user_attrs.get(OUT_DIR_ATTR, ".")) / "best")
    return TrainConfig.from_dict(data, source=f"study {study.study_name!r} best trial {best.number}")


def write_reports(study, out_dir: Path) -> dict[str, Path]:
    """importance.html, history.html, intermediate.html and best_config.json in out_dir."""
    from optuna import visualization as vis

    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    plots = {"history": vis.plot_optimization_history, "intermediate": vis.plot_intermediate_values,
             "importance": vis.plot_param_importances}
    for name, plot in plots.items():
        path = out_dir / f"{name}.html"
        try:
            figure = plot(study)
            atomic_write_text(path, figure.to_html(include_plotlyjs=True, full_html=True))
        except (ValueError, RuntimeError) as error:
            # e.g. importance needs two completed trials whose parameters differ
            atomic_write_text(path, f"<!doctype html><html><body><h1>{name}</h1><p>Not available yet: "
                                    f"{error} ({len(complete)} completed trials).</p></body></html>\n")
            log.warning("%s plot not available: %s", name, error)
        written[name] = path
    if complete:
        cfg = best_config(study)
        payload = {**cfg.to_dict(), "_study": {"name": study.study_name, "best_trial": study.best_trial.number,
                                               "best_bleu": study.best_value, "params": study.best_params}}
        written["best_config"] = atomic_write_json(out_dir / "best_config.json", payload)
    return written


def train_best(args: argparse.Namespace) -> dict[str, Any]:
    """Train the best configuration of an existing study for the config's full epochs."""
    import optuna

    from slt.train.trainer import Trainer

    if args.storage is None:
        raise TrainingError("--train-best needs the --storage that holds the study (e.g. sqlite:///study.db)")
    try:
        study = optuna.load_study(study_name=args.study_name, storage=_storage(args.storage))
    except KeyError:
        raise TrainingError(f"no study named {args.study_name!r} in {args.storage}") from None
    cfg = config_from_args(args, base=best_config(study))  # explicit flags (e.g. --epochs, --run-dir) win
    log.info("training the best configuration of study %r (trial %d, BLEU %.2f) into %s",
             study.study_name, study.best_trial.number, study.best_value, cfg.run_dir)
    return Trainer(cfg).fit()
