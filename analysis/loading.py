"""Read predictions from SLT Studio run directories and from files other tools write.

Every loader returns one ``pandas.DataFrame`` with string columns ``id``, ``reference`` and
``prediction`` (in file order, nothing dropped) plus whatever other fields the file carried
(``embedding`` values become float32 numpy arrays). Where the rows came from is kept in ``df.attrs``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.errors import (
    DuplicateIdError,
    EmbeddingError,
    FileEncodingError,
    LengthMismatchError,
    ManifestReadError,
    MissingColumnError,
    PredictionsFileError,
    RunDirectoryError,
)

__all__ = ["load_predictions", "list_epochs", "load_train_texts", "read_text_lines"]

# Column names other tools use for the three fields, tried in order, case-insensitively.
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "sample_id", "uid", "seg_id", "name", "video", "video_name", "key"),
    "reference": ("reference", "ref", "references", "target", "tgt", "translation", "gold", "caption", "label"),
    "prediction": ("prediction", "pred", "predictions", "hypothesis", "hyp", "output", "generated", "translation_pred"),
}
_EPOCH_FILE = re.compile(r"^predictions_epoch(\d+)\.jsonl$")
_TEST_FILE = "predictions_test.jsonl"
_SNIFF_BYTES = 8192


def list_epochs(run_dir: str | Path) -> list[int]:
    """Epoch numbers that have a ``predictions_epoch{N}.jsonl`` file in ``run_dir``, ascending."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(f"Run directory not found: {run_dir}")
    epochs = [int(m.group(1)) for p in run_dir.iterdir() if (m := _EPOCH_FILE.match(p.name))]
    return sorted(epochs)


def load_predictions(
    path_or_run_dir: str | Path,
    epoch: int | str | None = None,
    columns: Mapping[str, str] | None = None,
    references: str | Path | None = None,
) -> pd.DataFrame:
    """Load predictions as a DataFrame with ``id``, ``reference``, ``prediction`` and any extra fields.

    ``path_or_run_dir`` is a run directory (``epoch`` picks ``predictions_epoch{N}.jsonl``; ``"test"``
    or no epoch files picks ``predictions_test.jsonl``; default: the last epoch), or a file:
    ``.jsonl``, ``.json`` (a list of records, or ``{"epoch", "bleu", "samples": [...]}``), ``.csv``,
    ``.tsv``, or plain text with one prediction a line, which needs ``references`` (a parallel text file).
    ``columns`` maps ``id``/``reference``/``prediction`` to the names the file uses.
    Raises :class:`analysis.errors.AnalysisError` subclasses with a specific message on bad input.
    """
    path = Path(path_or_run_dir)
    if path.is_dir():
        path = _pick_run_file(path, epoch)
    elif not path.exists():
        raise PredictionsFileError(f"Predictions file not found: {path}")
    _check_not_binary_or_empty(path)

    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = list(_iter_jsonl(path))
        df, attrs = pd.DataFrame.from_records(records), {"format": "jsonl"}
    elif suffix == ".json":
        df, attrs = _read_json(path, columns, references)
    elif suffix in (".csv", ".tsv", ".tab"):
        df, attrs = _read_table(path, "\t" if suffix != ".csv" else ","), {"format": suffix[1:]}
    else:
        df, attrs = pd.DataFrame({"prediction": read_text_lines(path)}), {"format": "text"}
        if references is None:
            raise PredictionsFileError(
                f"{path.name} is read as plain text (one prediction a line), which needs a parallel reference "
                "file: pass references=... (CLI: --refs REF.txt), or use .jsonl/.json/.csv/.tsv with a reference "
                "column."
            )
    if df.empty:
        raise PredictionsFileError(f"{path} contains no samples.")
    df = _normalise(df, path, columns, references)
    epoch_match = _EPOCH_FILE.match(path.name)
    df.attrs.update({"source": str(path), **attrs})
    if epoch_match and "epoch" not in df.attrs:
        df.attrs["epoch"] = int(epoch_match.group(1))
    return df


def read_text_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file without their line endings (empty lines kept: they are samples)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsFileError(f"File not found: {path}")
    _check_not_binary_or_empty(path)
    lines: list[str] = []
    for _, line in _iter_lines(path):
        lines.append(line.rstrip("\r\n"))
    return lines


def load_train_texts(manifest: str | Path) -> list[str]:
    """The ``translation`` column of a training manifest TSV (``id, video_path, n_frames, translation``)."""
    path = Path(manifest)
    if not path.is_file():
        raise ManifestReadError(f"Training manifest not found: {path}")
    try:
        _check_not_binary_or_empty(path)
    except PredictionsFileError as exc:
        raise ManifestReadError(str(exc)) from exc
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        try:
            header = [h.strip().lower() for h in reader.fieldnames or []]
            if "translation" not in header:
                raise ManifestReadError(
                    f"Training manifest {path.name} has no 'translation' column (columns: {reader.fieldnames}); "
                    "expected a TSV with header id, video_path, n_frames, translation."
                )
            key = reader.fieldnames[header.index("translation")]
            return [(row.get(key) or "") for row in reader]
        except UnicodeDecodeError as exc:
            raise ManifestReadError(f"Training manifest {path.name} is not valid UTF-8 ({exc.reason}).") from exc


# --- internals -------------------------------------------------------------------------------------------


def _pick_run_file(run_dir: Path, epoch: int | str | None) -> Path:
    epochs = list_epochs(run_dir)
    if epoch == "test" or (epoch is None and not epochs):
        test = run_dir / _TEST_FILE
        if test.is_file():
            return test
        raise RunDirectoryError(
            f"Run directory {run_dir} has no predictions_epoch*.jsonl or {_TEST_FILE}; "
            "train with evaluation enabled or point at a predictions file."
        )
    if epoch is None:
        epoch = epochs[-1]
    try:
        epoch = int(epoch)
    except (TypeError, ValueError):
        raise RunDirectoryError(f"Epoch must be an integer or 'test', got {epoch!r}.") from None
    if epoch not in epochs:
        raise RunDirectoryError(f"Run directory {run_dir} has no predictions for epoch {epoch} (epochs: {epochs}).")
    return run_dir / f"predictions_epoch{epoch}.jsonl"


def _check_not_binary_or_empty(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip():
        raise PredictionsFileError(f"{path} is empty.")
    # Text never contains NUL bytes (UTF-16 files do; we ask for UTF-8).
    if b"\x00" in head:
        raise PredictionsFileError(
            f"{path} looks like a binary file (it contains NUL bytes), not UTF-8 text; "
            "expected .jsonl/.json/.csv/.tsv or one sentence a line."
        )


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) pairs, streaming, with a precise message on bad UTF-8."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.start + 4]
                hint = " It looks like Latin-1/Windows-1252;" if all(0x80 <= b for b in bad[:1]) else ""
                raise FileEncodingError(
                    f"{path.name} is not valid UTF-8: line {lineno}, byte {exc.start} ({bad!r}).{hint} "
                    "re-save the file as UTF-8."
                ) from None


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    for lineno, line in _iter_lines(path):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PredictionsFileError(f"{path.name} line {lineno} is not valid JSON: {exc.msg}.") from None
        if not isinstance(rec, dict):
            raise PredictionsFileError(
                f"{path.name} line {lineno} is a JSON {type(rec).__name__}, expected an object "
                '{"id", "reference", "prediction"}.'
            )
        if isinstance(rec.get("embedding"), list):
            rec["embedding"] = _to_vector(rec["embedding"], path, lineno)
        yield rec


def _to_vector(values: list[Any], path: Path, where: int) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise EmbeddingError(f"{path.name} record {where}: 'embedding' is not a list of numbers.") from None


def _read_json(
    path: Path, columns: Mapping[str, str] | None, references: str | Path | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    text = "".join(line for _, line in _iter_lines(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PredictionsFileError(f"{path.name} is not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    attrs: dict[str, Any] = {"format": "json"}
    if isinstance(data, dict):
        samples = next((data[k] for k in ("samples", "predictions", "results") if isinstance(data.get(k), list)), None)
        if samples is None:
            sibling = path.parent / _TEST_FILE
            if path.name == "test_results.json" and sibling.is_file():
                df = load_predictions(sibling, columns=columns, references=references)
                return df, {"format": "jsonl", "results": {k: v for k, v in data.items() if not isinstance(v, list)}}
            raise PredictionsFileError(
                f"{path.name} is a JSON object without a 'samples' list (keys: {sorted(data)[:10]}); expected "
                '{"epoch", "bleu", "samples": [{"reference", "prediction"}, ...]} or a list of records.'
            )
        attrs.update({k: v for k, v in data.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)})
        data = samples
    if not isinstance(data, list):
        raise PredictionsFileError(f"{path.name} holds a JSON {type(data).__name__}; expected a list of records.")
    if not all(isinstance(r, dict) for r in data):
        raise PredictionsFileError(f"{path.name}: every sample must be a JSON object with reference/prediction fields.")
    for i, rec in enumerate(data):
        if isinstance(rec.get("embedding"), list):
            rec["embedding"] = _to_vector(rec["embedding"], path, i)
    return pd.DataFrame.from_records(data), attrs


def _read_table(path: Path, sep: str) -> pd.DataFrame:
    try:
        # dtype=str and no NA parsing: an empty prediction stays "", the text "NA" stays "NA".
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig", engine="c")
    except UnicodeDecodeError as exc:
        # Re-scan for the exact line to report.
        for _ in _iter_lines(path):
            pass
        raise FileEncodingError(f"{path.name} is not valid UTF-8 ({exc.reason}).") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        kind = "TSV" if sep == "\t" else "CSV"
        raise PredictionsFileError(f"{path.name} is not a well-formed {kind} table: {exc}") from None


def _find_column(df: pd.DataFrame, field: str, columns: Mapping[str, str] | None) -> str | None:
    if columns and field in columns:
        name = columns[field]
        if name not in df.columns:
            raise MissingColumnError(
                f"Column {name!r} (configured for {field}) is not in the file; columns: {list(df.columns)}."
            )
        return name
    lowered = {str(c).strip().lower(): c for c in df.columns}
    return next((lowered[a] for a in DEFAULT_ALIASES[field] if a in lowered), None)


def _as_text(series: pd.Series) -> pd.Series:
    """Strings for every cell: None/NaN -> "" (an empty prediction is a real sample)."""
    return series.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))


def _normalise(
    df: pd.DataFrame, path: Path, columns: Mapping[str, str] | None, references: str | Path | None
) -> pd.DataFrame:
    unknown = set(columns or {}) - set(DEFAULT_ALIASES)
    if unknown:
        raise MissingColumnError(
            f"Unknown field(s) in columns mapping: {sorted(unknown)}; use id/reference/prediction.")
    pred_col = _find_column(df, "prediction", columns)
    ref_col = _find_column(df, "reference", columns)
    if ref_col is not None and ref_col == pred_col:
        raise MissingColumnError(f"{path.name}: the same column {ref_col!r} was picked for reference and prediction.")
    if pred_col is None:
        raise MissingColumnError(
            f"{path.name} has no prediction column (columns: {list(df.columns)}); name it 'prediction' or pass "
            "columns={'prediction': NAME} (CLI: --columns prediction=NAME)."
        )
    if references is not None:
        if ref_col is not None and "reference" not in (columns or {}):
            raise PredictionsFileError(
                f"{path.name} already has a reference column ({ref_col!r}); drop the separate reference file."
            )
        refs = read_text_lines(references)
        if len(refs) != len(df):
            raise LengthMismatchError(
                f"{path.name} has {len(df)} predictions but {Path(references).name} has {len(refs)} references; "
                "parallel files need one line per sample."
            )
        df = df.assign(reference=refs)
        ref_col = "reference"
    elif ref_col is None:
        raise MissingColumnError(
            f"{path.name} has no reference column (columns: {list(df.columns)}); name it 'reference' or pass "
            "columns={'reference': NAME} (CLI: --columns reference=NAME)."
        )
    id_col = _find_column(df, "id", columns)
    out = pd.DataFrame(
        {
            "id": _as_text(df[id_col]) if id_col is not None else pd.Series([str(i) for i in range(len(df))]),
            "reference": _as_text(df[ref_col]),
            "prediction": _as_text(df[pred_col]),
        },
        index=df.index,
    )
    if id_col is not None:
        counts = out["id"].value_counts()
        repeated = counts[counts > 1]
        if len(repeated):
            shown = ", ".join(f"{i!r} x{n}" for i, n in repeated.head(10).items())
            raise DuplicateIdError(
                f"{path.name} lists {len(repeated)} sample id(s) more than once: {shown}"
                f"{' ...' if len(repeated) > 10 else ''}. Each sample would be scored once per copy; keep one line "
                "per id (e.g. remove the rows a merge or an appended rerun repeated)."
            )
    extras = df.drop(columns=[c for c in (id_col, ref_col, pred_col) if c is not None])
    extras = extras.drop(columns=[c for c in extras.columns if c in out.columns])
    return pd.concat([out, extras], axis=1).reset_index(drop=True)

