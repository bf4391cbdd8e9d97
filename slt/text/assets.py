"""fairseq2 asset cards: registering local (file://) text decoder/tokenizer cards and checking availability offline.

fairseq2 0.8.1 builds its asset store once, on first use, from the sources registered before `init_fairseq2()`
returns, and freezes its dependency container after the first resolve. To register cards at any time (before or
after fairseq2 was initialised by someone else), we plug one *live* metadata provider into the store and keep our
cards in a module-level dict that it reads on every lookup.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import threading
import urllib.parse
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

import yaml

from slt.download import RemoteFile, default_cache_dir, ensure_file
from slt.errors import ModelUnavailableError, UnknownAssetError
from slt.text.languages import FLORES200_LANGUAGES
from slt.utils.io import atomic_write_text

_SOURCE = "slt-local"
_CARDS: dict[str, dict[str, object]] = {}  # canonical name ("name@") -> card metadata
_LOCK = threading.Lock()
_installed = False
_PROVIDER = None  # the fairseq2 metadata provider over _CARDS, created by _live_provider()

DECODER_FAMILY = "transformer_decoder"  # sonar-space's SONAR_TEXT_DECODER_FAMILY
TOKENIZER_FAMILY = "nllb"


def _live_provider():
    """The one fairseq2 metadata provider serving `_CARDS` (built on first use: fairseq2 is imported only here)."""
    global _PROVIDER
    if _PROVIDER is None:
        from fairseq2.assets import AssetMetadataProvider

        class _LiveProvider(AssetMetadataProvider):
            """Serves the cards in `_CARDS`, including ones registered after the store was built."""

            def maybe_get_metadata(self, name: str) -> dict[str, object] | None:
                with _LOCK:
                    metadata = _CARDS.get(name)
                    return copy.deepcopy(metadata) if metadata is not None else None

            @property
            def asset_names(self) -> Set[str]:
                with _LOCK:
                    return set(_CARDS)

            @property
            def source(self) -> str:
                return _SOURCE

        _PROVIDER = _LiveProvider()
    return _PROVIDER


def _live_source():
    from fairseq2.assets import AssetMetadataSource

    class _LiveSource(AssetMetadataSource):
        def load(self):
            yield _live_provider()

    return _LiveSource()


def ensure_fairseq2():
    """Initialise fairseq2 once per process with our live card provider; return the asset store.

    Works whichever happened first: if fairseq2 is not initialised we pass the provider as an `extras` hook;
    if someone already initialised it, we add the provider to the store it built.
    """
    import fairseq2
    import fairseq2.runtime.dependency as fs2_dependency
    from fairseq2.assets import AssetMetadataSource, AssetStore
    from fairseq2.error import InvalidOperationError

    global _installed
    provider = _live_provider()
    with _LOCK:
        if not _installed:
            if fs2_dependency._resolver is None:
                fairseq2.init_fairseq2(
                    extras=lambda c: c.collection.register(AssetMetadataSource, lambda _r: _live_source()))
            else:
                container = fs2_dependency._resolver
                try:
                    container.collection.register(AssetMetadataSource, lambda _r: _live_source())
                except InvalidOperationError:
                    # The container is frozen and the store exists: fairseq2 0.8.1 has no public way to add a
                    # source now, so append the provider to the store's list (lookups scan it in order).
                    store = container.resolve(AssetStore)
                    providers = getattr(store, "_metadata_providers", None)
                    if not isinstance(providers, list):
                        raise ModelUnavailableError(
                            "cannot register local SONAR text assets: fairseq2 was initialised with an asset store "
                            f"of type {type(store).__name__} that does not accept new cards"
                        ) from None
                    if provider not in providers:
                        providers.append(provider)
            _installed = True
    return fs2_dependency.get_dependency_resolver().resolve(AssetStore)


def _config_overrides(arch_config: Any) -> dict[str, object]:
    if dataclasses.is_dataclass(arch_config) and not isinstance(arch_config, type):
        arch_config = dataclasses.asdict(arch_config)
    if not isinstance(arch_config, Mapping):
        raise TypeError(f"arch_config must be a SonarTextDecoderConfig or a dict, got {type(arch_config).__name__}")
    return {key: copy.deepcopy(value) for key, value in arch_config.items()}


def text_asset_cards(
    name_prefix: str,
    decoder_checkpoint: str | Path,
    tokenizer_model: str | Path,
    langs: list[str],
    arch_config: Any,
    base_arch: str = "toy",
) -> list[dict[str, object]]:
    """The two card dicts (decoder, tokenizer) that `register_local_text_assets` registers."""
    checkpoint = Path(decoder_checkpoint).resolve()
    tokenizer = Path(tokenizer_model).resolve()
    for label, path in (("decoder checkpoint", checkpoint), ("tokenizer model", tokenizer)):
        if not path.is_file():
            raise ModelUnavailableError(f"cannot register '{name_prefix}': the {label} {path} does not exist")
    tokenizer_fields: dict[str, object] = {
        "tokenizer": checkpoint_uri(tokenizer),
        "tokenizer_family": TOKENIZER_FAMILY,
        "tokenizer_config": {"_set_": {"langs": list(langs), "default_lang": langs[0]}},
    }
    decoder = {
        "name": f"{name_prefix}_decoder",
        "model_family": DECODER_FAMILY,
        "model_arch": base_arch,
        "model_config": {"_set_": _config_overrides(arch_config)},
        "checkpoint": checkpoint_uri(checkpoint),
        **tokenizer_fields,
    }
    return [decoder, {"name": f"{name_prefix}_tokenizer", **copy.deepcopy(tokenizer_fields)}]


def checkpoint_uri(path: Path) -> str:
    """A file:// URI fairseq2 loads without any download step."""
    return Path(path).resolve().as_uri()


def register_cards(cards: list[dict[str, object]]) -> list[str]:
    """Register card dicts (each with a `name`); re-registering a name replaces its card. Returns the names.

    The cards live in this module (read by both backends); fairseq2 sees them through the live provider that
    `ensure_fairseq2` installs, whenever that happens."""
    names = []
    with _LOCK:
        for card in cards:
            card = copy.deepcopy(dict(card))
            name = str(card.pop("name"))
            _CARDS[f"{name}@"] = card
            names.append(name)
    return names


def register_local_text_assets(
    name_prefix: str,
    decoder_checkpoint: str | Path,
    tokenizer_model: str | Path,
    langs: list[str],
    arch_config: Any,
) -> tuple[str, str]:
    """Register fairseq2 cards for a local SONAR-architecture text decoder and its SentencePiece tokenizer.

    `arch_config` (a `SonarTextDecoderConfig` or its dict) overrides sonar-space's "toy" architecture. Safe to call
    before or after fairseq2 was initialised, and again with the same arguments. Returns
    `(decoder_name, tokenizer_name)` for `SonarTextDecoder(decoder=..., tokenizer=...)`.
    """
    if not langs:
        raise ModelUnavailableError(f"cannot register '{name_prefix}': the tokenizer needs at least one language")
    decoder, tokenizer = register_cards(
        text_asset_cards(name_prefix, decoder_checkpoint, tokenizer_model, langs, arch_config))
    return decoder, tokenizer


_FILE_FIELDS = ("checkpoint", "tokenizer")


def write_asset_cards(cards: list[dict[str, object]], path: str | Path) -> Path:
    """Write cards as a multi-document YAML file (fairseq2's card format), for `register_asset_file`.

    Files inside the card file's folder are written as paths relative to it, so the folder can be moved or
    copied (e.g. a demo bundle to another machine); `register_asset_file` resolves them again."""
    folder = Path(path).resolve().parent
    portable = []
    for card in cards:
        card = copy.deepcopy(dict(card))
        for field in _FILE_FIELDS:
            value = card.get(field)
            if isinstance(value, str) and value.startswith("file://"):
                local = Path(urllib.parse.unquote(urllib.parse.urlparse(value).path))
                if local.is_relative_to(folder):
                    card[field] = str(local.relative_to(folder))
        portable.append(card)
    return atomic_write_text(path, yaml.safe_dump_all(portable, sort_keys=False))


def _resolve_relative_files(card: dict, folder: Path) -> dict:
    card = dict(card)
    for field in _FILE_FIELDS:
        value = card.get(field)
        if isinstance(value, str) and "://" not in value:
            card[field] = checkpoint_uri(folder / value)
    return card


def register_asset_file(path: str | Path) -> list[str]:
    """Register every card of a YAML card file written by `write_asset_cards`."""
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailableError(f"asset card file {path} does not exist")
    cards = [card for card in yaml.safe_load_all(path.read_text(encoding="utf-8")) if card]
    for card in cards:
        if not isinstance(card, dict) or "name" not in card:
            raise ModelUnavailableError(f"asset card file {path} has an entry without a name: {card!r}")
    return register_cards([_resolve_relative_files(card, path.resolve().parent) for card in cards])


def retrieve_card(name: str, kind: str):
    """The card called `name`, or :class:`UnknownAssetError` listing similar registered names."""
    store = ensure_fairseq2()
    card = store.maybe_retrieve_card(name)
    if card is None:
        known = sorted({n.split("@")[0] for n in store.asset_names} | {n.split("@")[0] for n in _CARDS})
        similar = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
        hint = f" Similar names: {', '.join(similar)}." if similar else ""
        raise UnknownAssetError(
            f"no fairseq2 asset card named '{name}' for the {kind}.{hint} Use an official name such as "
            "'text_sonar_basic_decoder' / 'text_sonar_basic_encoder', or register local files with "
            "slt.text.register_local_text_assets()."
        )
    return card


def require_local_files(card, field: str, kind: str) -> None:
    """Fail fast, without touching the network, if the card's `field` URI is neither a file nor in fairseq2's cache."""
    import fairseq2.runtime.dependency as fs2_dependency
    from fairseq2.assets.download_manager import AssetDownloadError, AssetDownloadManager

    uri_field = card.maybe_get_field(field)
    if uri_field is None:
        raise ModelUnavailableError(f"asset '{card.name}' has no '{field}' field, so it cannot provide the {kind}")
    uri = uri_field.as_uri()
    if uri.scheme == "file":
        path = uri.to_path()
        if not path.exists():
            raise ModelUnavailableError(f"the {kind} file {path} of asset '{card.name}' does not exist")
        return
    manager = fs2_dependency.get_dependency_resolver().resolve(AssetDownloadManager)
    try:
        if field == "checkpoint":
            manager.download_model(uri, local_only=True)
        else:
            manager.download_tokenizer(uri, local_only=True)
    except AssetDownloadError as ex:
        raise ModelUnavailableError(
            f"the {kind} of asset '{card.name}' ({uri}) is not in the fairseq2 cache and downloading it needs "
            "internet access; connect once to fill the cache (FAIRSEQ2_CACHE_DIR) or use a local model set"
        ) from ex


# --------------------------------------------------------------------------- fairseq2-free resolution
# sonar-space's official text cards, as facts (what its YAML files say), for the transformers backend.
OFFICIAL_TEXT_CARDS: dict[str, dict[str, object]] = {
    "text_sonar_basic_decoder": {
        "model_family": DECODER_FAMILY, "model_arch": "basic",
        "checkpoint": "https://dl.fbaipublicfiles.com/SONAR/sonar_text_decoder.pt",
        "tokenizer": "https://dl.fbaipublicfiles.com/SONAR/sentencepiece.source.256000.model",
    },
    "text_sonar_basic_encoder": {
        "tokenizer": "https://dl.fbaipublicfiles.com/SONAR/sentencepiece.source.256000.model",
    },
}


@dataclasses.dataclass(frozen=True)
class TextAssets:
    """The local files and settings of a text decoder + tokenizer pair, resolved without fairseq2."""

    checkpoint: Path
    tokenizer: Path
    langs: list[str]
    config: dict[str, object]  # fairseq2 field names: the card's architecture with its overrides applied


def _card(name: str, kind: str) -> dict[str, object]:
    with _LOCK:
        card = _CARDS.get(f"{name}@")
    if card is not None:
        return copy.deepcopy(card)
    if name in OFFICIAL_TEXT_CARDS:
        return copy.deepcopy(OFFICIAL_TEXT_CARDS[name])
    known = sorted({n.split("@")[0] for n in _CARDS} | set(OFFICIAL_TEXT_CARDS))
    similar = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
    hint = f" Similar names: {', '.join(similar)}." if similar else ""
    raise UnknownAssetError(
        f"no asset card named '{name}' for the {kind}.{hint} Use 'text_sonar_basic_decoder' / "
        "'text_sonar_basic_encoder', or register local files with slt.text.register_asset_file()."
    )


def text_cache_dir() -> Path:
    """Where the transformers backend keeps the official SONAR text files it downloads (fairseq2 has its own)."""
    return default_cache_dir() / "sonar_text"


def _local_file(uri: object, name: str, kind: str) -> Path:
    """The path behind a card's file URI; official https files must already be in the SLT cache."""
    if not isinstance(uri, str):
        raise ModelUnavailableError(f"asset '{name}' has no file for the {kind}")
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
        if not path.is_file():
            raise ModelUnavailableError(f"the {kind} file {path} of asset '{name}' does not exist")
        return path
    if parsed.scheme in ("http", "https"):
        remote = RemoteFile(Path(parsed.path).name, uri, f"SONAR {kind}")
        return ensure_file(remote, text_cache_dir())
    raise ModelUnavailableError(f"asset '{name}' names its {kind} as {uri!r}, which is neither a file nor a URL")


# sonar-space's SONAR text decoder architectures (fairseq2 field names); a card names one and may override fields.
BASE_ARCHS: dict[str, dict[str, object]] = {
    "basic": {"model_dim": 1024, "max_seq_len": 512, "vocab_info": {"size": 256206, "pad_idx": 1},
              "activation_fn": "ReLU", "no_scale_embedding": False, "num_encoder_attn_heads": 16,
              "num_decoder_layers": 24, "ffn_inner_dim": 8192, "input_dim": None},
    "toy": {"model_dim": 32, "max_seq_len": 512, "vocab_info": {"size": 1024, "pad_idx": 1},
            "activation_fn": "ReLU", "no_scale_embedding": False, "num_encoder_attn_heads": 4,
            "num_decoder_layers": 2, "ffn_inner_dim": 128, "input_dim": None},
}


def resolve_arch_config(arch: str, overrides: Mapping[str, object] | None) -> dict[str, object]:
    """sonar-space's `arch` with a card's `_set_` overrides applied (vocab_info merged field by field)."""
    if arch not in BASE_ARCHS:
        raise ModelUnavailableError(
            f"unknown SONAR text decoder architecture '{arch}' (known: {', '.join(BASE_ARCHS)})"
        )
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE_ARCHS[arch].items()}
    for key, value in (overrides or {}).items():
        if key == "vocab_info" and isinstance(value, Mapping):
            config["vocab_info"] = {**config["vocab_info"], **value}  # type: ignore[dict-item]
        else:
            config[key] = value
    return config


def resolve_text_assets(decoder: str, tokenizer: str) -> TextAssets:
    """Files, languages and architecture of a decoder/tokenizer pair from the registered cards (no fairseq2).

    Local cards (`register_asset_file`) point at files; the official names download into the SLT cache
    (`$SLT_CACHE_DIR/sonar_text`) on first use, or fail clearly offline.
    """
    decoder_card = _card(decoder, "text decoder")
    if decoder_card.get("model_family") != DECODER_FAMILY:
        raise ModelUnavailableError(
            f"asset '{decoder}' is not a SONAR text decoder (model_family must be '{DECODER_FAMILY}')")
    tokenizer_card = _card(tokenizer, "text tokenizer")
    overrides = decoder_card.get("model_config") or {}
    overrides = overrides.get("_set_", overrides) if isinstance(overrides, dict) else {}
    config = resolve_arch_config(str(decoder_card.get("model_arch", "basic")), overrides)
    tokenizer_config = tokenizer_card.get("tokenizer_config") or {}
    if isinstance(tokenizer_config, dict):
        tokenizer_config = tokenizer_config.get("_set_", tokenizer_config)
    langs = [str(lang) for lang in (tokenizer_config or {}).get("langs") or FLORES200_LANGUAGES]
    return TextAssets(
        checkpoint=_local_file(decoder_card.get("checkpoint"), decoder, "text decoder checkpoint"),
        tokenizer=_local_file(tokenizer_card.get("tokenizer"), tokenizer, "text tokenizer model"),
        langs=langs,
        config=config,
    )
