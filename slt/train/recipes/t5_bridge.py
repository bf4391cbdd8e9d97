"""`t5-bridge` recipe: SONAR sentence embedding -> attention bridge -> a T5 decoder that writes the text.

features [B, N, D] -> SONAR ASL encoder (frozen, or trained with its own lr) -> embedding [B, E]
-> projection into Q memory slots -> Q learnable query tokens cross-attend to them (the bridge) -> [B, Q, d]
-> T5 decoder cross-attends to the Q tokens (the T5 encoder is unused and removed).

Mode collapse (every clip decoded to the same sentence) is this recipe's known failure: the trainer writes
each epoch's predictions and their distinct ratio, and the bridge is built so its output depends on the
embedding through every slot (no shared constant path apart from the learnable queries).

``bridge: "linear"`` is the one-token alternative: one linear projection of the embedding is the single token the
T5 decoder attends to. Measured on the synthetic corpus (configs/collapse/, docs/COLLAPSE.md), it is the
attention bridge that collapses there and the linear bridge that stays healthy. A plausible cause, not yet
verified: the attention bridge's output carries the learnable queries through a residual path that is the same
for every clip, and a randomly initialised T5 can learn the corpus's likeliest sentences from that path alone.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from transformers import T5Config, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

from slt.data.features import FeaturesDataset
from slt.errors import CheckpointError, ModelUnavailableError, TrainingError
from slt.models import load_sonar_sign_encoder, save_model_checkpoint
from slt.modelset import official_encoder_path
from slt.train.recipes.base import unwrap
from slt.train.recipes.seq2seq import Seq2SeqRecipe, Seq2SeqTranslator
from slt.train.recipes.target_spm import EOS_ID, PAD_ID, TargetTokenizer, ensure_target_spm
from slt.utils.io import atomic_save

if TYPE_CHECKING:
    from slt.train.config import TrainConfig

log = logging.getLogger("slt.train")

SPM_FILE = "target_spm.model"
EXPORT_FILE = "t5_bridge.pt"
ENCODER_FILE = "encoder.pt"
T5_SMALL_REPOS = ("google-t5/t5-small", "t5-small")  # Hugging Face repo ids that hold t5-small
T5_INITS = ("pretrained", "random")
BRIDGES = ("attention", "linear")


# ------------------------------------------------------------------------------------------------ T5 configs
def t5_small_config(vocab_size: int = 32128, dropout: float = 0.1) -> T5Config:
    """t5-small (v1.0) written in code, so nothing is fetched from a hub at run time."""
    return T5Config(
        vocab_size=vocab_size, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=dropout,
        layer_norm_epsilon=1e-6, feed_forward_proj="relu", tie_word_embeddings=True,
        pad_token_id=PAD_ID, eos_token_id=EOS_ID, decoder_start_token_id=PAD_ID,
    )


def t5_tiny_config(vocab_size: int, dropout: float = 0.0) -> T5Config:
    """A tiny T5 for tests and smoke runs."""
    return T5Config(
        vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        dropout_rate=dropout, feed_forward_proj="relu", tie_word_embeddings=True,
        pad_token_id=PAD_ID, eos_token_id=EOS_ID, decoder_start_token_id=PAD_ID,
    )


def find_pretrained_t5(t5_model: str) -> Path:
    """Folder with the pretrained weights + `spiece.model`: `t5_model` itself if it is a folder, else the
    Hugging Face cache entry of t5-small (offline only). ModelUnavailableError says what to download."""
    candidate = Path(t5_model).expanduser()
    if candidate.is_dir():
        folder = candidate
    elif t5_model == "t5-small":
        from huggingface_hub import snapshot_download
        from huggingface_hub.constants import HF_HUB_CACHE

        folder = None
        for repo in T5_SMALL_REPOS:
            try:
                folder = Path(snapshot_download(repo, local_files_only=True))
                break
            except Exception:  # LocalEntryNotFoundError and friends: not cached under this id
                continue
        if folder is None:
            raise ModelUnavailableError(
                f"t5-small pretrained weights are not in the Hugging Face cache ({HF_HUB_CACHE}) and are not "
                "downloaded at training time. On a machine with internet run `huggingface-cli download "
                "google-t5/t5-small config.json model.safetensors spiece.model` (then copy the cache here), or "
                "pass the folder holding those files with --t5-model PATH, or train the T5 decoder from random "
                "weights with --t5-init random")
    else:
        raise TrainingError(f"t5_model must be 't5-small', 'tiny' or a folder with pretrained T5 weights; "
                            f"{t5_model!r} is none of these")
    missing = [name for name in ("spiece.model",) if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if missing:
        raise ModelUnavailableError(f"pretrained T5 folder {folder} lacks {missing}; download them from "
                                    "google-t5/t5-small or pass --t5-init random")
    return folder


def drop_t5_encoder(t5: T5ForConditionalGeneration) -> T5ForConditionalGeneration:
    """The bridge replaces T5's encoder: remove its blocks (the config keeps num_layers, which transformers
    also uses to size the decoder's key/value cache) and freeze its unused final norm."""
    t5.encoder.block = nn.ModuleList()
    t5.encoder.final_layer_norm.requires_grad_(False)
    return t5


# ------------------------------------------------------------------------------------------------ modules
class AttentionBridge(nn.Module):
    """Sentence embedding [B, E] -> Q tokens [B, Q, d]: the embedding is projected into Q memory slots that
    Q learnable query tokens attend to, followed by a feed-forward block."""

    def __init__(self, emb_dim: int, d_model: int, n_queries: int, dropout: float = 0.0):
        super().__init__()
        if n_queries < 1:
            raise TrainingError(f"bridge_queries must be >= 1, got {n_queries}")
        heads = next(h for h in (8, 4, 2, 1) if d_model % h == 0)
        self.n_queries, self.d_model = n_queries, d_model
        self.project = nn.Linear(emb_dim, n_queries * d_model)
        self.memory_norm = nn.LayerNorm(d_model)
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * d_model ** -0.5)
        self.attention = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(4 * d_model, d_model))
        self.out_norm = nn.LayerNorm(d_model)

    def forward(self, embedding: Tensor) -> Tensor:
        memory = self.memory_norm(self.project(embedding).view(-1, self.n_queries, self.d_model))
        queries = self.queries.unsqueeze(0).expand(memory.shape[0], -1, -1)
        attended, _ = self.attention(queries, memory, memory, need_weights=False)
        hidden = queries + attended
        return self.out_norm(hidden + self.ffn(hidden))


class LinearBridge(nn.Module):
    """Embedding [B, E] -> one token [B, 1, d] (a linear projection, layer-normed); no input-independent path."""

    n_queries = 1

    def __init__(self, emb_dim: int, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.project = nn.Linear(emb_dim, d_model)
        self.out_norm = nn.LayerNorm(d_model)

    def forward(self, embedding: Tensor) -> Tensor:
        return self.out_norm(self.project(embedding)).unsqueeze(1)


def make_bridge(kind: str, emb_dim: int, d_model: int, n_queries: int, dropout: float = 0.0) -> nn.Module:
    """The bridge named by the config's ``bridge`` ("attention", the default, or "linear")."""
    if kind == "attention":
        return AttentionBridge(emb_dim, d_model, n_queries, dropout)
    if kind == "linear":
        return LinearBridge(emb_dim, d_model)
    raise TrainingError(f"bridge must be one of {BRIDGES}, got {kind!r}")


class T5BridgeModel(Seq2SeqTranslator):
    """SONAR encoder + bridge + T5 decoder; `encoder.*` parameters are the pretrained sentence encoder."""

    def __init__(self, encoder: nn.Module, bridge: AttentionBridge | LinearBridge, t5: T5ForConditionalGeneration,
                 tokenizer: TargetTokenizer):
        super().__init__()
        self.encoder = encoder
        self.bridge = bridge
        self.t5 = t5
        self.tokenizer = tokenizer  # not a module: travels with the model for predict/export

    def bridge_states(self, features: Tensor, padding_mask: Tensor) -> Tensor:
        """Features -> the [B, Q, d] tokens the T5 decoder attends to."""
        if any(p.requires_grad for p in self.encoder.parameters()):
            embedding = self.encoder.encode(features, padding_mask)
        else:
            with torch.no_grad():  # frozen: no activations kept for backward
                embedding = self.encoder.encode(features, padding_mask)
        return self.bridge(embedding.float())

    def encoder_inputs(self, features: Tensor, padding_mask: Tensor) -> dict[str, Any]:
        """The bridge tokens stand in for T5's (removed) encoder output; all of them are attended to."""
        states = self.bridge_states(features, padding_mask)
        return {"encoder_outputs": BaseModelOutput(last_hidden_state=states), "attention_mask": _ones_mask(states)}


def _ones_mask(states: Tensor) -> Tensor:
    return torch.ones(states.shape[:2], dtype=torch.long, device=states.device)


# ------------------------------------------------------------------------------------------------ recipe
class T5BridgeRecipe(Seq2SeqRecipe):
    name = "t5-bridge"

    def build(self, cfg: TrainConfig, device: torch.device) -> nn.Module:
        """Load the base encoder, build the bridge and the T5 decoder (pretrained or random) and its vocabulary."""
        t5_init = cfg.t5_init
        if t5_init not in T5_INITS:
            raise TrainingError(f"t5_init must be one of {T5_INITS}, got {t5_init!r}")
        if cfg.bridge not in BRIDGES:
            raise TrainingError(f"bridge must be one of {BRIDGES}, got {cfg.bridge!r}")
        encoder = load_sonar_sign_encoder(base_encoder_path(cfg), device=device).train()
        run_dir = Path(cfg.run_dir)
        spm_path = run_dir / SPM_FILE
        if cfg.t5_model != "tiny" and t5_init == "pretrained":
            folder = find_pretrained_t5(cfg.t5_model)
            if not spm_path.is_file():
                run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / "spiece.model", spm_path)  # the export carries its own vocabulary
            tokenizer = TargetTokenizer(spm_path)
            config = (t5_small_config(dropout=cfg.dropout) if cfg.t5_model == "t5-small"
                      else T5Config.from_pretrained(folder, dropout_rate=cfg.dropout))
            t5 = T5ForConditionalGeneration.from_pretrained(folder, config=config, local_files_only=True)
        else:
            tokenizer = ensure_target_spm(_train_texts(cfg), spm_path, cfg.target_vocab_size)
            if cfg.t5_model == "tiny":
                config = t5_tiny_config(tokenizer.vocab_size, cfg.dropout)
            elif cfg.t5_model == "t5-small":
                config = t5_small_config(tokenizer.vocab_size, cfg.dropout)
            elif (Path(cfg.t5_model).expanduser() / "config.json").is_file():  # a folder's architecture only
                config = T5Config.from_pretrained(Path(cfg.t5_model).expanduser(), dropout_rate=cfg.dropout,
                                                  vocab_size=tokenizer.vocab_size)
            else:
                raise TrainingError(f"t5_model must be 't5-small', 'tiny' or a folder with a T5 config.json; "
                                    f"{cfg.t5_model!r} is none of these")
            t5 = T5ForConditionalGeneration(config)
        if t5.config.vocab_size < tokenizer.vocab_size:
            raise TrainingError(f"T5 vocabulary ({t5.config.vocab_size}) is smaller than the tokenizer's "
                                f"({tokenizer.vocab_size})")
        bridge = make_bridge(cfg.bridge, encoder.config.output_dim, t5.config.d_model, cfg.bridge_queries, cfg.dropout)
        model = T5BridgeModel(encoder, bridge, drop_t5_encoder(t5), tokenizer).to(device)
        self.on_epoch_start(model, 1, cfg)
        return model

    def is_trainable_name(self, param_name: str) -> bool:
        # t5.encoder.* is the removed T5 encoder's leftover norm; a never-unfrozen SONAR encoder stays out too.
        return not param_name.startswith("t5.encoder.")

    def param_groups(self, model: nn.Module, cfg: TrainConfig) -> list[dict]:
        """Base grouping, minus the SONAR encoder when it is frozen for the whole run (it then never enters
        the optimiser); with `unfreeze_after` it is there from the start with requires_grad=False."""
        frozen_forever = cfg.freeze_encoder and cfg.unfreeze_after is None
        groups = super().param_groups(model, cfg)
        if frozen_forever:
            encoder_params = {id(p) for p in unwrap(model).encoder.parameters()}
            groups = [{**g, "params": [p for p in g["params"] if id(p) not in encoder_params]} for g in groups]
            groups = [g for g in groups if g["params"]]
        return groups

    def lr_for(self, param_name: str, cfg: TrainConfig) -> float:
        """Differential learning rates: the pretrained encoder gets cfg.encoder_lr (default lr / 5)."""
        if param_name.startswith("encoder."):
            return cfg.encoder_lr if cfg.encoder_lr is not None else cfg.lr / 5
        return cfg.lr

    def on_epoch_start(self, model: nn.Module, epoch: int, cfg: TrainConfig) -> None:
        """freeze_encoder keeps the SONAR encoder fixed; with unfreeze_after=N it trains from epoch N+1."""
        encoder = unwrap(model).encoder
        frozen = cfg.freeze_encoder and (cfg.unfreeze_after is None or epoch <= cfg.unfreeze_after)
        was_frozen = not any(p.requires_grad for p in encoder.parameters())
        encoder.requires_grad_(not frozen)
        if was_frozen and not frozen and epoch > 1:
            log.info("epoch %d: unfreezing the SONAR encoder (lr %.3g)", epoch, self.lr_for("encoder.", cfg))

    def export(self, model: nn.Module, run_dir: Path) -> dict[str, Path]:
        """`encoder.pt` (the fine-tuned SONAR encoder, loadable by slt.models.load_sonar_sign_encoder and the
        engine) and `t5_bridge.pt` (bridge + T5 decoder + configs) next to the run's vocabulary."""
        inner = unwrap(model)
        run_dir = Path(run_dir)
        encoder_path = save_model_checkpoint(inner.encoder, run_dir / ENCODER_FILE)
        translator = atomic_save(
            {
                "kind": "t5_bridge",
                "bridge": inner.bridge.state_dict(),
                "t5": inner.t5.state_dict(),
                "config": {"emb_dim": inner.bridge.project.in_features, "d_model": inner.bridge.d_model,
                           "n_queries": inner.bridge.n_queries, "t5": inner.t5.config.to_dict(),
                           "bridge": "linear" if isinstance(inner.bridge, LinearBridge) else "attention"},
                "encoder": ENCODER_FILE,
                "spm": SPM_FILE,
            },
            run_dir / EXPORT_FILE,
        )
        return {"encoder": Path(encoder_path), "translator": translator, "spm": inner.tokenizer.model_path}


def load_t5_bridge(path: str | Path, device: str | torch.device = "cpu") -> T5BridgeModel:
    """Rebuild an exported t5-bridge translator (encoder and vocabulary are read from the same folder)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"t5-bridge checkpoint not found: {path}")
    data: Any = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(data, dict) or data.get("kind") != "t5_bridge":
        raise CheckpointError(f"{path} is not a t5-bridge export (expected kind 't5_bridge')")
    config = data["config"]
    t5 = drop_t5_encoder(T5ForConditionalGeneration(T5Config.from_dict(config["t5"])))
    t5.load_state_dict(data["t5"], strict=True)
    bridge = make_bridge(config.get("bridge", "attention"), config["emb_dim"], config["d_model"], config["n_queries"])
    bridge.load_state_dict(data["bridge"], strict=True)
    encoder = load_sonar_sign_encoder(path.parent / data["encoder"])
    model = T5BridgeModel(encoder, bridge, t5, TargetTokenizer(path.parent / data["spm"]))
    model.requires_grad_(False)
    return model.to(device).eval()


def base_encoder_path(cfg: TrainConfig) -> Path:
    """cfg.base_encoder, or the official zero-shot encoder (downloaded on first use)."""
    return Path(cfg.base_encoder) if cfg.base_encoder else official_encoder_path()


def _train_texts(cfg: TrainConfig) -> list[str]:
    if not cfg.train_features:
        raise TrainingError("the t5-bridge recipe needs train_features to train its SentencePiece vocabulary")
    return FeaturesDataset(cfg.train_features, max_samples=cfg.max_samples).texts

