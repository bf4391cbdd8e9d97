"""SONAR text decoding time, fairseq2 (sonar-space) vs transformers backend, same decoder, options and inputs.

    python bench/bench_decoder.py                                  # random 256-d 4-layer decoder, 64 x 3 languages
    python bench/bench_decoder.py --device cuda --model-dim 1024 --layers 24 --heads 16   # SONAR-sized layers
    python bench/bench_decoder.py --cards checkpoints/demo/text/text_assets.yaml  # a registered decoder (its langs)

Without `--cards`, a randomly initialised decoder of the given shape is built (on transformers, saved in
fairseq2's layout, so both backends load the same file) with a small SentencePiece model and three languages.
Each backend decodes the same `--n` embeddings x languages once to warm up, then `--repeats` times; the table
gives the best time, rows/s, the ratio to the first backend, and how many rows gave identical token ids.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from slt.text.backends import fairseq2_available, load_text_decoder
from slt.text.options import DecodingOptions

LANGS = ["eng_Latn", "fra_Latn", "deu_Latn"]
_SENTENCES = [f"the {a} {n} {v} {w}." for a in ("red", "old", "small", "happy") for n in ("cat", "house", "friend")
              for v in ("sees", "likes", "reads") for w in ("a book", "the water", "my letter", "today")]


def random_decoder(folder: Path, model_dim: int, layers: int, heads: int) -> tuple[str, str]:
    """Build, save (fairseq2 layout) and register a random decoder; returns its (decoder, tokenizer) names."""
    from slt.text.assets import register_cards, text_asset_cards
    from slt.text.hf_decoder import SonarM2M100, save_sonar_m2m100
    from slt.text.tiny import tiny_decoder_config_dict, train_sentencepiece

    tokenizer = train_sentencepiece(_SENTENCES, folder / "bench.model", 300, LANGS)
    config = tiny_decoder_config_dict(tokenizer, LANGS, model_dim=model_dim, layers=layers, heads=heads)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = SonarM2M100(config)
    checkpoint = save_sonar_m2m100(model, folder / "bench_decoder.pt")
    names = register_cards(text_asset_cards("bench_random", checkpoint, tokenizer, LANGS, config))
    return names[0], names[1]


def bench_decoders(decoder: str, tokenizer: str, backends: list[str], n: int, options: DecodingOptions,
                   device: str = "cpu", repeats: int = 2, scale: float = 2.0) -> list[dict]:
    """Time `generate_ids` of each backend on the same inputs; rows in the order of `backends`."""
    rows, reference = [], None
    for backend in backends:
        model = load_text_decoder(decoder, tokenizer, device=device, backend=backend)
        langs = [lang for lang in LANGS if lang in model.languages] or model.languages[:3]
        embeddings = scale * torch.randn(n, model.model_dim, generator=torch.Generator().manual_seed(0))
        model.generate_ids(embeddings[:2], langs, options)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            ids = model.generate_ids(embeddings, langs, options)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        ids = [seq.tolist() for seq in ids]
        reference = reference or ids
        same = sum(a == b for a, b in zip(reference, ids, strict=True))
        rows.append({"backend": backend, "rows": len(ids), "langs": len(langs), "seconds": best,
                     "rows_per_s": len(ids) / best, "identical": same})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=Path, default=None, help="asset-card YAML of a decoder to bench instead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=64, help="embeddings (each decoded into every language)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=32)
    parser.add_argument("--model-dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backends = (["fairseq2"] if fairseq2_available() else []) + ["transformers"]
    options = DecodingOptions(beam_size=args.beam_size, max_len=args.max_len)
    with tempfile.TemporaryDirectory() as tmp:
        if args.cards:
            from slt.text.assets import register_asset_file

            decoder, tokenizer = register_asset_file(args.cards)[:2]
            what = f"{decoder} ({args.cards})"
        else:
            decoder, tokenizer = random_decoder(Path(tmp), args.model_dim, args.layers, args.heads)
            what = f"random {args.model_dim}-d, {args.layers} layers, {args.heads} heads"
        rows = bench_decoders(decoder, tokenizer, backends, args.n, options, args.device, args.repeats)
    print(f"decoder: {what}; {args.n} embeddings x {rows[0]['langs']} languages, beam {args.beam_size}, "
          f"max_len {args.max_len}, device {args.device}")
    print(f"{'backend':>13} {'rows':>5} {'best s':>8} {'rows/s':>8} {'vs first':>9} {'same ids':>9}")
    for row in rows:
        print(f"{row['backend']:>13} {row['rows']:>5} {row['seconds']:>8.2f} {row['rows_per_s']:>8.1f} "
              f"{row['seconds'] / rows[0]['seconds']:>8.2f}x {row['identical']:>5}/{row['rows']}")


if __name__ == "__main__":
    main()
