"""A *trained* tiny stand-in for the SONAR text decoder: a text autoencoder whose decoder is sonar-space's
architecture. A small GRU sentence encoder maps a sentence to a `model_dim` vector; the decoder learns to
reconstruct the sentence from it by teacher forcing. Both are saved, and fairseq2 asset cards are written."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slt.errors import CheckpointError, TrainingError
from slt.text.assets import register_asset_file, text_asset_cards, write_asset_cards
from slt.text.backends import resolve_backend
from slt.text.forcing import IGNORE, forcing_batch
from slt.text.languages import validate_languages
from slt.text.nllb_tokenizer import NllbTokenizer
from slt.text.tiny import tiny_decoder_config_dict, train_sentencepiece
from slt.utils.io import atomic_save

SENTENCE_ENCODER_KIND = "tiny_sentence_encoder"


class TinySentenceEncoder(nn.Module):
    """Sentence -> `model_dim` vector: SentencePiece pieces, embeddings, a bidirectional GRU, a linear map."""

    def __init__(self, tokenizer_model: str | Path, model_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.tokenizer_model = str(tokenizer_model)
        self._sp = spm.SentencePieceProcessor(model_file=self.tokenizer_model)
        self.config = {"model_dim": model_dim, "hidden": hidden}
        self.embed = nn.Embedding(self._sp.get_piece_size(), hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, model_dim)

    def forward(self, texts: Sequence[str]) -> Tensor:
        ids = [torch.tensor(self._sp.encode(text) or [0]) for text in texts]
        lengths = torch.tensor([len(i) for i in ids])
        padded = nn.utils.rnn.pad_sequence(ids, batch_first=True)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(padded), lengths, batch_first=True, enforce_sorted=False)
        _, last = self.rnn(packed)  # [2, B, hidden]: the final state of each direction
        return self.proj(torch.cat([last[0], last[1]], dim=-1))

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 256) -> Tensor:
        """[B, model_dim] embeddings (eval mode, batched)."""
        self.eval()
        return torch.cat([self(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])

    def save(self, path: str | Path) -> Path:
        state = {"model": self.state_dict(), "config": self.config, "tokenizer": self.tokenizer_model,
                 "kind": SENTENCE_ENCODER_KIND}
        return atomic_save(state, path)

    @classmethod
    def load(cls, path: str | Path) -> TinySentenceEncoder:
        """Load a saved encoder; its tokenizer path is stored inside (relative to the checkpoint if moved)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"sentence encoder checkpoint {path} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("kind") != SENTENCE_ENCODER_KIND:
            raise CheckpointError(f"{path} is not a tiny sentence encoder checkpoint (kind {state.get('kind')!r})")
        tokenizer = Path(state["tokenizer"])
        if not tokenizer.is_file():
            tokenizer = path.parent / tokenizer.name  # the folder was moved as a whole
        encoder = cls(tokenizer, **state["config"])
        encoder.load_state_dict(state["model"], strict=True)
        return encoder.eval()


def _default_prefix(out_dir: Path) -> str:
    digest = hashlib.sha1(str(out_dir.resolve()).encode()).hexdigest()[:8]
    return f"slt_tiny_{digest}"


def pretrain_text_decoder(
    sentences: Sequence[str],
    out_dir: str | Path,
    langs: Sequence[str] = ("eng_Latn",),
    model_dim: int = 64,
    steps: int = 400,
    seed: int = 0,
    *,
    layers: int = 2,
    vocab_size: int = 256,
    batch_size: int = 64,
    lr: float = 5e-3,
    name_prefix: str | None = None,
    backend: str = "auto",
) -> tuple[str, str, dict[str, Path]]:
    """Train the tiny autoencoder, save it under `out_dir`, register its asset cards; deterministic per seed.

    Returns `(decoder_name, tokenizer_name, paths)` with paths `tokenizer`, `decoder`, `sentence_encoder`, `cards`.
    Each training example uses one of `langs` (in turn) as target language, so every language token is seen.
    `backend` (auto | fairseq2 | transformers) is the library the decoder is trained with; either way it is saved
    in fairseq2's checkpoint layout, so both backends load it.
    """
    sentences = list(dict.fromkeys(s.strip() for s in sentences if isinstance(s, str) and s.strip()))
    if len(sentences) < 2:
        raise TrainingError("pretrain_text_decoder needs at least two distinct non-empty sentences")
    if steps < 1:
        raise TrainingError(f"steps must be >= 1, got {steps}")
    langs = validate_languages(langs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "tokenizer": out_dir / "sentencepiece.model",
        "decoder": out_dir / "text_decoder.pt",
        "sentence_encoder": out_dir / "sentence_encoder.pt",
        "cards": out_dir / "text_assets.yaml",
    }
    train_sentencepiece(sentences, paths["tokenizer"], vocab_size, langs)
    backend = resolve_backend(backend)
    tokenizer = NllbTokenizer(paths["tokenizer"], langs)  # fairseq2's ids (tests/test_hf_decoder.py checks)
    config = tiny_decoder_config_dict(paths["tokenizer"], langs, model_dim=model_dim, layers=layers)
    token_seqs = [tokenizer.encode(s, langs[i % len(langs)]) for i, s in enumerate(sentences)]

    threads = torch.get_num_threads()
    # One thread: these tiny matrices run faster without thread hand-offs, and the result is reproducible.
    torch.set_num_threads(1)
    try:
        decoder, encoder = _train_autoencoder(sentences, token_seqs, paths["tokenizer"], langs, tokenizer.pad_idx,
                                              model_dim, layers, steps, seed, batch_size, lr, backend, config)
    finally:
        torch.set_num_threads(threads)
    if backend == "fairseq2":
        from slt.text.tiny import save_text_decoder

        save_text_decoder(decoder, config, paths["decoder"])
    else:
        from slt.text.hf_decoder import save_sonar_m2m100

        save_sonar_m2m100(decoder, paths["decoder"])
    encoder.save(paths["sentence_encoder"])
    prefix = name_prefix or _default_prefix(out_dir)
    write_asset_cards(text_asset_cards(prefix, paths["decoder"], paths["tokenizer"], langs, config), paths["cards"])
    decoder_name, tokenizer_name = register_asset_file(paths["cards"])
    return decoder_name, tokenizer_name, paths


def _new_decoder(backend, config, tokenizer_model, langs, model_dim, layers, seed):
    """A freshly initialised decoder on `backend` and its teacher-forcing logits function (embeddings, inputs,
    lengths) -> [B, S, V]. Function-level imports: only the chosen backend's library is loaded."""
    if backend == "fairseq2":
        from slt.text.forcing import decoder_logits
        from slt.text.tiny import build_tiny_text_decoder

        decoder = build_tiny_text_decoder(tokenizer_model, langs, model_dim=model_dim, layers=layers, seed=seed)
        return decoder, lambda embeddings, inputs, lengths: decoder_logits(decoder, embeddings, inputs, lengths)
    from slt.text.hf_decoder import SonarM2M100

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        decoder = SonarM2M100(config)
        _fairseq2_init(decoder, config["vocab_info"]["pad_idx"])
    # Right padding needs no mask: causal attention keeps real positions from seeing the pads after them.
    return decoder, lambda embeddings, inputs, lengths: decoder(inputs, embeddings)[0]


def _fairseq2_init(model, pad_idx: int) -> None:
    """Initialise a SonarM2M100 as fairseq2 initialises the SONAR decoder (transformers' BERT-style normal(0.02)
    trains this tiny autoencoder markedly slower): scaled embeddings (std dim^-0.5, zero pad row), Xavier-uniform
    attention projections (gain 2^-0.5 for q/k/v, as in fairseq), zero attention biases, torch's default FFN init."""
    decoder = model.decoder
    with torch.no_grad():
        embed = decoder.embed_tokens.weight
        embed.normal_(0.0, embed.shape[1] ** -0.5)
        embed[pad_idx].zero_()
        for layer in decoder.layers:
            for attention in (layer.self_attn, layer.encoder_attn):
                for proj in (attention.q_proj, attention.k_proj, attention.v_proj):
                    nn.init.xavier_uniform_(proj.weight, gain=2**-0.5)
                    nn.init.zeros_(proj.bias)
                nn.init.xavier_uniform_(attention.out_proj.weight)
                nn.init.zeros_(attention.out_proj.bias)
            layer.fc1.reset_parameters()
            layer.fc2.reset_parameters()


def _train_autoencoder(sentences, token_seqs, tokenizer_model, langs, pad_idx, model_dim, layers, steps, seed,
                       batch_size, lr, backend, config):
    """Teacher-forced reconstruction training of (sentence encoder, decoder); returns both in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        decoder, decoder_logits = _new_decoder(backend, config, tokenizer_model, langs, model_dim, layers, seed)
        encoder = TinySentenceEncoder(tokenizer_model, model_dim)
        params = list(decoder.parameters()) + list(encoder.parameters())
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        # Short warm-up then cosine decay: stable from a random start, converged at the end.
        warmup = max(1, steps // 20)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        )
        order = random.Random(seed)
        decoder.train()
        encoder.train()
        for step in range(steps):
            batch = order.sample(range(len(sentences)), min(batch_size, len(sentences)))
            embeddings = encoder([sentences[i] for i in batch])
            inputs, targets, lengths = forcing_batch([token_seqs[i] for i in batch], pad_idx, torch.device("cpu"))
            logits = decoder_logits(embeddings, inputs, lengths)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)
            if not torch.isfinite(loss):
                raise TrainingError(f"text autoencoder loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
    return decoder.eval(), encoder.eval()
