"""`TranslationEngine`: the one object per process that turns signed video into text.

    video --preprocess--> clips --SignHiera--> features [N, D] --encoder(s)--> embeddings [B, 1024]
          --SONAR text decoder--> {encoder: {language: text}}

Each model is loaded once (lazily, on first use) and shared by every caller; several encoders ("zero-shot",
"fine-tuned", ...) share one SignHiera and one decoder, and a clip's features are computed once and reused by
all encoders (and by later calls on the same unchanged file, through a small LRU cache). An encoder entry with its
own SignHiera (a two-stage system, see ``ModelSet.encoder_signhieras``) cannot share them: each distinct SignHiera
is loaded once, the clip is preprocessed once, and its clips go through every SignHiera the request needs; features
are cached per (file, preprocessing, SignHiera). Model calls are serialised by a lock, so the engine is safe to
call from many threads (the Gradio app); preprocessing runs outside the lock, so one request's video decoding
overlaps another's model work.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from slt.download import RemoteFile, console_progress
from slt.errors import Cancelled, ModelUnavailableError, TranslationCancelled
from slt.modelset import FileSource, ModelSet
from slt.runtime import pick_device, pick_dtype
from slt.text import FLORES200_LANGUAGES, DecodingOptions, validate_languages
from slt.text.assets import register_asset_file
from slt.text.backends import check_backend_name, load_text_decoder
from slt.text.options import check_sonar_options
from slt.video import default_preprocess, fit_preprocess_to_model, join_clip_features, preprocess_videos

ProgressFn = Callable[[str, float], None]  # (stage description, fraction done)


@dataclass
class VideoFeatures:
    """A clip after preprocessing and SignHiera: what every encoder consumes."""

    video: str
    features: torch.Tensor  # [N, D] float32 on CPU
    preprocessed: object  # slt.video.PreprocessedVideo, with the clip tensor dropped to save memory
    timings: dict[str, float]


@dataclass
class TranslationResult:
    video: str
    model_set: str
    translations: dict[str, dict[str, str]]  # encoder label -> language -> text
    timings: dict[str, float]
    box: tuple[int, int, int, int]
    faces_found: int
    frames_sampled: int
    used_center_crop: bool
    feature_shape: tuple[int, ...]
    embedding_dim: int
    device: str
    dtype: str
    # encoder label -> the SignHiera its features came from ("model set" for the set's own, else the checkpoint)
    signhiera: dict[str, str] = field(default_factory=dict)
    preview: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("preview")
        data["box"] = list(self.box)
        data["feature_shape"] = list(self.feature_shape)
        return data


class TranslationEngine:
    """Loads a model set once and translates videos with any of its encoders into any decoder language."""

    _shared: dict[tuple, TranslationEngine] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self,
        model_set: ModelSet,
        device: str = "auto",
        dtype: str | torch.dtype | None = None,
        preprocess=None,
        feature_cache_size: int = 16,
        clip_batch_size: int | None = None,
        decoder_backend: str | None = None,
    ):
        self.model_set = model_set
        # auto | fairseq2 | transformers; None reads $SLT_DECODER_BACKEND (default auto: fairseq2 when it imports).
        # Only the name is checked here (no import): which library runs is settled when the decoder loads.
        self.decoder_backend = check_backend_name(decoder_backend or os.environ.get("SLT_DECODER_BACKEND", "auto"))
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        # The set's detector; the CNN at full resolution on CUDA (as released), on 512-px copies on a CPU.
        self.preprocess_config = preprocess or default_preprocess(model_set.detector, self.device)
        # SignHiera on a full-size clip needs ~6.6 GB on CPU: one clip at a time there, a few on a GPU.
        self.clip_batch_size = clip_batch_size or (4 if self.device.type == "cuda" else 1)
        self._model_lock = threading.RLock()
        self._cache_lock = threading.Lock()
        self._signhieras: dict[str, torch.nn.Module] = {}  # signhiera_key -> loaded SignHiera
        self._signhiera_configs: dict[str, object] = {}  # signhiera_key -> config read from its file (signhiera_config)
        self._encoders: dict[str, torch.nn.Module] = {}
        self._decoder = None
        self._feature_cache: OrderedDict[tuple, VideoFeatures] = OrderedDict()
        self._feature_cache_size = feature_cache_size
        self.load_seconds: dict[str, float] = {}

    # ----------------------------------------------------------------- construction
    @classmethod
    def shared(cls, model_set: ModelSet, device: str = "auto", **kwargs) -> TranslationEngine:
        """The process-wide engine for (model set, device, decoder backend): every caller gets the same loaded
        models. The caller resolves the set (slt.registry); the engine only loads what it is given."""
        # The backend as the engine will read it (None means $SLT_DECODER_BACKEND, else auto), so callers that
        # name it and callers that leave it out share one engine.
        backend = check_backend_name(kwargs.get("decoder_backend") or os.environ.get("SLT_DECODER_BACKEND", "auto"))
        key = (model_set.name, str(pick_device(device)), backend)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(model_set, device=device, **kwargs)
            return cls._shared[key]

    @property
    def encoder_names(self) -> list[str]:
        return list(self.model_set.encoders)

    def add_encoder(self, label: str, checkpoint: str | Path, signhiera: str | Path | None = None) -> None:
        """Make a fine-tuned encoder checkpoint available under `label` (loaded on first use), reading the features
        of `signhiera` (its own SignHiera checkpoint) when given, else of the set's SignHiera."""
        with self._model_lock:
            self.model_set = self.model_set.with_encoders(
                {label: checkpoint}, None if signhiera is None else {label: signhiera})
            self._encoders.pop(label, None)

    def add_system(self, label: str, system) -> None:
        """Make a trained system (a `slt.modelset.SystemSpec`: encoder + its own SignHiera) available as `label`."""
        self.add_encoder(label, system.encoder, system.signhiera)

    # ----------------------------------------------------------------- which SignHiera an encoder reads
    def signhiera_key(self, label: str | None = None) -> str:
        """The identity of the SignHiera encoder `label` reads (None: the set's own): entries whose checkpoints are
        the same file share one loaded model and one set of features."""
        source = self.model_set.signhiera if label is None else self.model_set.signhiera_of(label)
        return _source_key(source)

    @property
    def base_signhiera_key(self) -> str:
        return _source_key(self.model_set.signhiera)

    def signhiera_description(self, label: str) -> str:
        """What a result reports for encoder `label`: "model set" (the set's SignHiera), else the checkpoint."""
        if self.signhiera_key(label) == self.base_signhiera_key:
            return "model set"
        source = self.model_set.signhiera_of(label)
        return source.filename if isinstance(source, RemoteFile) else str(source)

    # ----------------------------------------------------------------- lazy model loading
    def _timed_load(self, what: str, load: Callable):
        start = time.perf_counter()
        model = load()
        self.load_seconds[what] = time.perf_counter() - start
        return model

    @property
    def signhiera(self):
        """The set's own SignHiera (loaded on first use)."""
        return self.signhiera_model(self.base_signhiera_key)

    def signhiera_for(self, label: str):
        """The SignHiera encoder `label` reads (the set's, or the entry's own), loaded once per checkpoint."""
        self._check_encoder_label(label)
        return self.signhiera_model(self.signhiera_key(label))

    def signhiera_model(self, key: str):
        """The SignHiera with identity `key` (see signhiera_key), loaded on first use."""
        with self._model_lock:
            if key not in self._signhieras:
                # Imported here for start-up time: slt.models loads transformers' T5 (~3 s).
                from slt.models import load_signhiera

                source, name = self._signhiera_source(key)
                path = self.model_set.resolve_file(source, progress=self._download_progress("SignHiera"))
                self._signhieras[key] = self._timed_load(
                    name, lambda: load_signhiera(path, device=self.device, dtype=self.dtype))
            return self._signhieras[key]

    def signhiera_config(self, key: str):
        """The config of SignHiera `key`: the loaded model's, else read from its file without building the model
        (and without the model lock), so preprocessing, which needs only the clip size, need not wait for a model
        another thread is still loading. A file that must first be downloaded is loaded as the model."""
        model = self._signhieras.get(key)
        if model is not None:
            return model.config
        path = self.model_set.local_file(self._signhiera_source(key)[0])
        if path is None:
            return self.signhiera_model(key).config
        with self._cache_lock:
            if key not in self._signhiera_configs:
                from slt.models.loading import read_signhiera_config  # for start-up time, as in signhiera_model

                self._signhiera_configs[key] = read_signhiera_config(path)
            return self._signhiera_configs[key]

    def _signhiera_source(self, key: str) -> tuple[FileSource, str]:
        """(file, timing name) of a SignHiera identity: "signhiera" for the set's, "signhiera:<label>" for the first
        encoder entry that names another one."""
        if key == self.base_signhiera_key:
            return self.model_set.signhiera, "signhiera"
        for label, source in self.model_set.encoder_signhieras.items():
            if _source_key(source) == key:
                return source, f"signhiera:{label}"
        raise ModelUnavailableError(f"no encoder of model set '{self.model_set.name}' uses SignHiera {key}")

    def _check_encoder_label(self, label: str) -> None:
        if label not in self.model_set.encoders:
            raise ModelUnavailableError(
                f"unknown encoder '{label}'; this model set has: {', '.join(self.model_set.encoders)}")

    def encoder(self, label: str):
        with self._model_lock:
            if label not in self._encoders:
                self._check_encoder_label(label)
                from slt.models import load_sonar_sign_encoder  # here for start-up time, as in `signhiera`

                path = self.model_set.resolve_file(self.model_set.encoders[label],
                                                   progress=self._download_progress(label))
                self._encoders[label] = self._timed_load(
                    f"encoder:{label}", lambda: load_sonar_sign_encoder(path, device=self.device, dtype=self.dtype)
                )
            return self._encoders[label]

    @property
    def decoder(self):
        with self._model_lock:
            if self._decoder is None:
                if self.model_set.asset_cards is not None:
                    register_asset_file(self.model_set.asset_cards)
                self._decoder = self._timed_load(
                    "decoder",
                    lambda: load_text_decoder(self.model_set.decoder, self.model_set.tokenizer, device=self.device,
                                              dtype=self.dtype, backend=self.decoder_backend),
                )
            return self._decoder

    def load(self, encoders: Iterable[str] | None = None) -> TranslationEngine:
        """Load everything up front (the app does this at start so the first request is not slow)."""
        _ = self.signhiera  # the properties load on first access
        for label in encoders or self.encoder_names:
            self.signhiera_for(label)
            self.encoder(label)
        _ = self.decoder
        return self

    def _download_progress(self, name: str):
        return console_progress(name)

    @property
    def languages(self) -> list[str]:
        return list(self.model_set.languages or FLORES200_LANGUAGES)

    # ----------------------------------------------------------------- stages
    def _cache_key(self, video: Path, preprocess, signhiera_key: str) -> tuple:
        stat = video.stat()
        return (str(video.resolve()), stat.st_size, stat.st_mtime_ns, repr(preprocess), signhiera_key)

    def extract(self, video: str | Path, preprocess=None, cancel: threading.Event | None = None,
                signhiera: str | None = None) -> VideoFeatures:
        """Preprocess a video and run a SignHiera (identity `signhiera`, see signhiera_key; default: the set's)
        over its clips; cached per (file, preprocessing settings, SignHiera)."""
        return self.extract_many([video], preprocess, cancel, signhiera=signhiera)[0]

    def extract_many(self, videos: Sequence[str | Path], preprocess=None, cancel: threading.Event | None = None,
                     progress: Callable[[float], None] | None = None,
                     signhiera: str | None = None) -> list[VideoFeatures]:
        """Features of several videos from one SignHiera (default: the set's); see extract_with."""
        key = signhiera or self.base_signhiera_key
        return self.extract_with(videos, [key], preprocess, cancel, progress)[key]

    def extract_with(self, videos: Sequence[str | Path], signhieras: Sequence[str], preprocess=None,
                     cancel: threading.Event | None = None,
                     progress: Callable[[float], None] | None = None) -> dict[str, list[VideoFeatures]]:
        """Features of several videos from each of several SignHieras (identities, see signhiera_key).

        Cached (video, SignHiera) pairs are reused; every other video is preprocessed once (per preprocessing
        setting the SignHieras need: normally one) and its clips go through each SignHiera whose features it lacks
        (and only those), in shared batches of `clip_batch_size` (clips of short videos fill a GPU batch together).
        Memory holds one video's uint8 crops at a time plus one batch of float clips.

        `cancel` is checked between stages and before every decoded frame (TranslationCancelled); `progress` gets
        the fraction of the videos' preprocessing done."""
        keys = list(dict.fromkeys(signhieras))
        # SignHieras of other clip sizes need other crops: one preprocessing pass per distinct setting.
        groups: dict[str, tuple[object, list[str]]] = {}
        for key in keys:
            config = fit_preprocess_to_model(preprocess or self.preprocess_config, self.signhiera_config(key))
            groups.setdefault(repr(config), (config, []))[1].append(key)
        results: dict[str, list[VideoFeatures | None]] = {key: [None] * len(videos) for key in keys}
        for config, group in groups.values():
            pending: list[tuple[int, Path, dict[str, tuple | None]]] = []
            for position, video in enumerate(map(Path, videos)):
                missing = {}
                for key in group:
                    cache_key = self._cache_key(video, config, key) if video.exists() else None
                    with self._cache_lock:
                        if cache_key in self._feature_cache:
                            self._feature_cache.move_to_end(cache_key)
                            results[key][position] = replace(self._feature_cache[cache_key], timings={
                                "preprocess": 0.0, self._timing_name(key): 0.0, "feature_cache_hit": 1.0})
                            continue
                    missing[key] = cache_key
                if missing:
                    pending.append((position, video, missing))
            if not pending:
                continue
            extracted = self._run_signhiera([(v, list(missing)) for _, v, missing in pending], config, cancel,
                                            progress)
            for index, (position, _video, missing) in enumerate(pending):
                for key, cache_key in missing.items():
                    features = extracted[index][key]
                    results[key][position] = features
                    if cache_key is not None:
                        with self._cache_lock:
                            self._feature_cache[cache_key] = features
                            while len(self._feature_cache) > self._feature_cache_size:
                                self._feature_cache.popitem(last=False)
        return results

    def _timing_name(self, key: str) -> str:
        return self._signhiera_source(key)[1]

    def _run_signhiera(self, pending, config, cancel, progress=None) -> list[dict[str, VideoFeatures]]:
        """Preprocess each pending (video, SignHiera keys) once and run its clips through each of its SignHieras.
        Returns, per pending video, {key: features}."""
        keys = list(dict.fromkeys(key for _, needed in pending for key in needed))
        outputs = [{key: [] for key in needed} for _, needed in pending]
        metadata, timings = [], []
        batch: list[tuple[int, torch.Tensor, int]] = []  # (owner, clip [1,3,T,H,W], padding)
        signhiera_seconds = dict.fromkeys(keys, 0.0)
        clips_through = dict.fromkeys(keys, 0)

        def flush() -> None:
            for key in keys:
                rows = [(owner, clip, padding) for owner, clip, padding in batch if key in outputs[owner]]
                if not rows:
                    continue
                start = time.perf_counter()
                features = self.clip_features(torch.cat([clip for _, clip, _ in rows]),
                                              [padding for _, _, padding in rows], signhiera=key)
                for (owner, _, _), row in zip(rows, features):
                    outputs[owner][key].append(row)
                signhiera_seconds[key] += time.perf_counter() - start
                clips_through[key] += len(rows)
            batch.clear()

        _check_cancel(cancel)
        # Sampled frames of all pending videos share face-detector batches on this engine's device; crops stay
        # uint8 and clips are normalised per batch. `cancel` is checked before every decoded frame.
        videos = preprocess_videos([video for video, _ in pending], config, materialize=False, device=self.device,
                                   should_stop=cancel.is_set if cancel is not None else None, progress=progress)
        try:
            for pre in videos:
                _check_cancel(cancel)
                owner = len(metadata)
                timings.append({"preprocess": pre.timings["total"]})
                for clip, padding in pre.iter_clip_batches(1):
                    batch.append((owner, clip, padding[0]))
                    if len(batch) == self.clip_batch_size:
                        _check_cancel(cancel)
                        flush()
                metadata.append(pre.without_frames())  # keep only the metadata and preview
        except Cancelled as stopped:
            raise TranslationCancelled(f"translation cancelled ({stopped})") from stopped
        if batch:
            flush()
        results: list[dict[str, VideoFeatures]] = []
        for owner, pre in enumerate(metadata):
            results.append({})
            for key, rows in outputs[owner].items():
                # Batches are shared between videos: each video gets its clips' share of the SignHiera time.
                seconds = signhiera_seconds[key] * pre.n_clips / max(clips_through[key], 1)
                features = join_clip_features(torch.stack(rows), pre.paddings)
                results[owner][key] = VideoFeatures(str(pending[owner][0]), features, pre,
                                                    {**timings[owner], self._timing_name(key): seconds})
        return results

    def clip_features(self, clips: torch.Tensor, paddings: Sequence[int], signhiera: str | None = None) -> torch.Tensor:
        """SignHiera (identity `signhiera`, default the set's) on normalised clips [b, 3, T, H, W] -> per-clip
        features [b, T/2, D] float32 on CPU. Padded frames are masked inside SignHiera, as the released model was
        trained."""
        signhiera = self.signhiera_model(signhiera or self.base_signhiera_key)
        with self._model_lock, torch.inference_mode():
            return signhiera.extract_features(clips.to(self.device, self.dtype), list(paddings)).float().cpu()

    def embed(self, features: Sequence[torch.Tensor], encoder: str) -> torch.Tensor:
        """Encode a batch of [N_i, D] feature sequences (padded together) into [B, 1024] sentence embeddings."""
        model = self.encoder(encoder)
        width = getattr(getattr(model, "config", None), "input_dim", None)
        if width is not None and features and features[0].shape[1] != width:
            raise ModelUnavailableError(
                f"encoder '{encoder}' ({self.model_set.encoders[encoder]}) takes {width}-dim features but got "
                f"{features[0].shape[1]}-dim ones (from SignHiera {self.signhiera_description(encoder)}): the encoder "
                "and the SignHiera were not trained together")
        lengths = [f.shape[0] for f in features]
        batch = torch.zeros(len(features), max(lengths), features[0].shape[1])
        padding_mask = torch.ones(len(features), max(lengths), dtype=torch.bool)
        for row, f in enumerate(features):
            batch[row, : f.shape[0]] = f
            padding_mask[row, : f.shape[0]] = False
        with self._model_lock, torch.inference_mode():
            embeddings = model.encode(batch.to(self.device, self.dtype), padding_mask.to(self.device))
        return embeddings.float()

    def decode(self, embeddings: torch.Tensor, languages: Sequence[str], decoding=None) -> dict[str, list[str]]:
        decoder = self.decoder
        with self._model_lock, torch.inference_mode():
            return decoder.decode(embeddings.to(self.device), list(languages), decoding or DecodingOptions())

    def validate_languages(self, languages: Iterable[str]) -> list[str]:
        return validate_languages(languages, supported=self.model_set.languages, decoder=self.model_set.decoder)

    # ----------------------------------------------------------------- the whole path
    def translate(self, video: str | Path, languages: Sequence[str] = ("eng_Latn",), **kwargs) -> TranslationResult:
        return self.translate_batch([video], languages, **kwargs)[0]

    def translate_batch(
        self,
        videos: Sequence[str | Path],
        languages: Sequence[str] = ("eng_Latn",),
        encoders: Sequence[str] | None = None,
        decoding=None,
        preprocess=None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> list[TranslationResult]:
        """Translate several videos with several encoders into several languages.

        Each video is preprocessed once and its features are extracted once per distinct SignHiera the encoders
        read (one pass when they all read the set's); each encoder then embeds all videos in one batch, and the
        decoder generates every (video x encoder) embedding for every language in one batched call per language.
        """
        languages = self.validate_languages(languages)  # fail before any expensive work
        check_sonar_options(decoding or DecodingOptions())
        encoders = list(encoders or self.encoder_names)
        for label in encoders:
            self._check_encoder_label(label)
        by_label = {label: self.signhiera_key(label) for label in encoders}
        keys = list(dict.fromkeys(by_label.values()))
        report = progress or (lambda stage, fraction: None)
        passes = f", {len(keys)} SignHieras" if len(keys) > 1 else ""
        report(f"preprocessing + SignHiera ({len(videos)} clip{'s' if len(videos) > 1 else ''}{passes})", 0.0)
        stage = "preprocessing: decode, find the signer, crop"
        extracted_by = self.extract_with(videos, keys, preprocess, cancel, progress=lambda f: report(stage, 0.5 * f))
        embeddings, encode_seconds = [], {}
        for label in encoders:
            _check_cancel(cancel)
            report(f"encoder '{label}'", 0.6 + 0.2 * len(embeddings) / len(encoders))
            self.encoder(label)  # load outside the timing
            start = time.perf_counter()
            embeddings.append(self.embed([item.features for item in extracted_by[by_label[label]]], label))
            encode_seconds[label] = time.perf_counter() - start
        _check_cancel(cancel)
        report("decoding", 0.8)
        _ = self.decoder  # loaded (timed as a load) before the decoding clock starts
        start = time.perf_counter()
        stacked = torch.cat(embeddings)  # rows: encoder-major, then video
        texts = self.decode(stacked, languages, decoding)
        decode_seconds = time.perf_counter() - start
        report("done", 1.0)
        results = []
        n_videos = len(videos)
        share = 1.0 / n_videos  # batched stages are shared equally between the videos
        signhieras = {label: self.signhiera_description(label) for label in encoders}
        for v in range(n_videos):
            item = extracted_by[by_label[encoders[0]]][v]
            pre = item.preprocessed
            translations = {
                label: {lang: texts[lang][e * n_videos + v] for lang in languages} for e, label in enumerate(encoders)
            }
            timings = _merge_timings([extracted_by[key][v].timings for key in keys])
            timings.update({f"encoder:{label}": seconds * share for label, seconds in encode_seconds.items()})
            timings["decode"] = decode_seconds * share
            results.append(
                TranslationResult(
                    video=str(videos[v]), model_set=self.model_set.name, translations=translations, timings=timings,
                    box=tuple(int(x) for x in pre.box), faces_found=pre.faces_found, frames_sampled=pre.frames_sampled,
                    used_center_crop=pre.used_center_crop, feature_shape=tuple(item.features.shape),
                    embedding_dim=int(stacked.shape[1]), device=str(self.device),
                    dtype=str(self.dtype).replace("torch.", ""), signhiera=signhieras,
                    preview=pre.preview,
                )
            )
        return results


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TranslationCancelled("translation cancelled")



def _source_key(source: FileSource) -> str:
    """A SignHiera file's identity: the resolved path of a local file, the name of a remote (cached) one."""
    if isinstance(source, RemoteFile):
        return f"remote:{source.filename}"
    return str(Path(source).resolve())


def _merge_timings(parts: list[dict[str, float]]) -> dict[str, float]:
    """One video's extraction timings over several SignHieras: preprocessing ran once (the one non-cached part
    has its time), then each SignHiera's pass; a feature-cache hit only when every SignHiera's features were."""
    merged: dict[str, float] = {"preprocess": max(part.get("preprocess", 0.0) for part in parts)}
    for part in parts:
        merged.update({name: seconds for name, seconds in part.items()
                       if name not in ("preprocess", "feature_cache_hit")})
    if all(part.get("feature_cache_hit") for part in parts):
        merged["feature_cache_hit"] = 1.0
    return merged
