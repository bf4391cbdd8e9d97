"""Peak memory of one stage-1 training step (signhiera-finetune) with and without gradient checkpointing.

    python bench/bench_stage1_memory.py [--device cpu|cuda] [--frames 16] [--size 224] [--clips 1] [--json]

The model is the released SignHiera architecture (hiera_base: 24 blocks, widths 96..768; random weights, nothing is
downloaded) on shorter clips than the released 128 frames so that a CPU can run it, feeding a small SONAR encoder
through stage 1's own module (slt.train.stage1.SignHieraSonar). The step is forward, a loss on the sentence
embeddings (the frozen text decoder is left out: its memory does not depend on checkpointing), backward and an
AdamW step. Rows: the default freeze fraction (0.8: the last blocks train) and all blocks trained, each with
checkpointing off and on. Every measurement runs in its own process: on CUDA the peak is
torch.cuda.max_memory_allocated over the step; on CPU it is the growth of the process's peak RSS (VmHWM, reset
just before the step: slt.bench.peak_rss_mark) to the step's end, which is what the step adds to a process that
already holds the model and the batch.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_CHILD = r"""
import json, sys
import torch
from slt.bench import peak_rss_growth, peak_rss_mark
from slt.data.crop_cache import ClipBatch
from slt.models import SignHiera, SignHieraConfig, SonarSignEncoder, SonarSignEncoderConfig
from slt.models.signhiera import first_trainable_block
from slt.train.stage1 import SignHieraSonar

device, frames, size, clips, fraction, checkpointing = sys.argv[1:7]
device, frames, size, clips = torch.device(device), int(frames), int(size), int(clips)
torch.manual_seed(0)
torch.set_num_threads(2)
signhiera = SignHiera(SignHieraConfig(input_size=(frames, size, size)))
encoder = SonarSignEncoder(SonarSignEncoderConfig.tiny(input_dim=signhiera.config.feature_dim, d_model=64,
                                                       output_dim=64))
first = first_trainable_block(len(signhiera.blocks), float(fraction))
model = SignHieraSonar(signhiera, encoder, first, checkpointing == "on").to(device).train()
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
generator = torch.Generator().manual_seed(1)
video = torch.randint(0, 256, (clips, frames, size, size, 3), dtype=torch.uint8, generator=generator)
batch = ClipBatch(ids=["v"], texts=["a sentence"], clips=video, paddings=[0] * clips, clips_per_video=[clips])
batch = batch.to(device)
if device.type == "cuda":
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
else:
    mark = peak_rss_mark()
model(batch).square().mean().backward()
optimizer.step()
if device.type == "cuda":
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated(device) - before
else:
    peak = peak_rss_growth(mark)
trained = sum(p.numel() for p in model.signhiera.parameters() if p.requires_grad)
print(json.dumps({"peak_bytes": peak, "blocks": len(signhiera.blocks), "first_trainable": first,
                  "trained_params": trained}))
"""


def measure(device: str, frames: int, size: int, clips: int, fraction: float, checkpointing: bool) -> dict:
    """One step in a fresh process; {"peak_bytes", "blocks", "first_trainable", "trained_params"}."""
    out = subprocess.run([sys.executable, "-c", _CHILD, device, str(frames), str(size), str(clips), str(fraction),
                          "on" if checkpointing else "off"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    if out.returncode != 0:
        raise RuntimeError(f"stage-1 memory child failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rows(device: str = "cpu", frames: int = 16, size: int = 224, clips: int = 1,
         fractions: tuple[float, ...] = (0.8, 0.0)) -> list[dict]:
    """Rows in slt.bench's table format (baseline = checkpointing off, ours = on; ratio = on / off)."""
    table = []
    for fraction in fractions:
        off = measure(device, frames, size, clips, fraction, False)
        on = measure(device, frames, size, clips, fraction, True)
        trained = off["blocks"] - off["first_trainable"]
        table.append({
            "row": f"stage-1 step peak memory ({device}, {clips}x{frames}x{size}px, {trained}/{off['blocks']} "
                   "blocks trained): checkpointing off vs on",
            "baseline_s": None, "ours_s": None, "ratio": on["peak_bytes"] / max(off["peak_bytes"], 1),
            "note": f"{off['peak_bytes'] / 2**20:.0f} MiB without, {on['peak_bytes'] / 2**20:.0f} MiB with "
                    f"({'max_memory_allocated' if device.startswith('cuda') else 'peak RSS growth'})"})
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=16, help="clip length (the released model takes 128)")
    parser.add_argument("--size", type=int, default=224, help="crop size (multiple of 32)")
    parser.add_argument("--clips", type=int, default=1, help="clips in the step's batch")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.8, 0.0],
                        help="signhiera_freeze_fraction values (0.8 is the recipe's default, 0 trains every block)")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON line (for slt.bench)")
    args = parser.parse_args(argv)
    table = rows(args.device, args.frames, args.size, args.clips, tuple(args.fractions))
    if args.json:
        print(json.dumps(table))
        return 0
    width = max(len(r["row"]) for r in table)
    print(f"{'measurement':{width}}  {'on/off':>7}  note")
    for r in table:
        print(f"{r['row']:{width}}  {r['ratio']:7.3f}  {r['note']}")
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB peak RSS; "
          "each step ran in its own process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
