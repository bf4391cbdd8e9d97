"""SignHiera for stage-1 fine-tuning: only the chosen last blocks train, the forward is unchanged, gradient
checkpointing gives the same gradients while keeping fewer activations, and a frozen prefix keeps none."""

from __future__ import annotations

import pytest
import torch

from slt.errors import ModelInputError
from slt.models import SignHiera, SignHieraConfig
from slt.models.signhiera import first_trainable_block

CONFIG = SignHieraConfig.tiny(num_frames=16, image_size=32, stages=(1, 2, 2, 1))  # 6 blocks


def _model(seed: int = 0) -> SignHiera:
    torch.manual_seed(seed)
    return SignHiera(CONFIG)


def _clips(seed: int = 1) -> tuple[torch.Tensor, list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 16, 32, 32, generator=generator), [0, 6]  # the second clip has padded frames


def _saved_bytes(model: SignHiera, clips: torch.Tensor, padding: list[int]) -> tuple[torch.Tensor, int]:
    """Features and the bytes autograd keeps for backward during the forward pass."""
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        features = model.extract_features(clips, padding)
    return features, saved


def test_first_trainable_block_by_fraction_or_count() -> None:
    assert first_trainable_block(16) == 12 and first_trainable_block(6, 0.8) == 4
    assert first_trainable_block(6, 0.0) == 0 and first_trainable_block(6, 1.0) == 6
    assert first_trainable_block(6, train_blocks=2) == 4
    with pytest.raises(ModelInputError, match=r"train_blocks must be in \[0, 6\], got 7"):
        first_trainable_block(6, train_blocks=7)
    with pytest.raises(ModelInputError, match="freeze_fraction"):
        first_trainable_block(6, 1.5)
    with pytest.raises(ModelInputError, match="first trainable block"):
        _model().train_last_blocks(7)


def test_only_the_chosen_blocks_change_and_the_forward_is_unchanged() -> None:
    clips, padding = _clips()
    reference = _model().extract_features(clips, padding).detach()
    model = _model()
    model.train_last_blocks(4)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    features = model.extract_features(clips, padding)
    assert torch.equal(features.detach(), reference)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    features.square().mean().backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.startswith(("blocks.4.", "blocks.5.")) for name in changed)
    assert {name.split(".")[1] for name in changed} == {"4", "5"}


def test_gradient_checkpointing_same_gradients_fewer_saved_activations() -> None:
    clips, padding = _clips()
    results = {}
    for checkpointing in (False, True):
        model = _model()
        model.train_last_blocks(0, gradient_checkpointing=checkpointing)
        features, saved = _saved_bytes(model, clips, padding)
        features.square().mean().backward()
        results[checkpointing] = (features.detach(), saved, {n: p.grad for n, p in model.named_parameters()
                                                             if p.grad is not None})
    (f0, saved0, g0), (f1, saved1, g1) = results[False], results[True]
    assert torch.equal(f0, f1) and g0.keys() == g1.keys()
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-5, atol=1e-7, msg=name)
    assert saved1 < saved0 / 2, (saved0, saved1)
    # A frozen prefix keeps nothing for backward either.
    model = _model()
    model.train_last_blocks(4)
    _, saved_frozen = _saved_bytes(model, clips, padding)
    assert saved_frozen < saved0 / 2, (saved0, saved_frozen)
