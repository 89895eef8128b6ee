"""The CPU kernels (trainer/kernels.py) compute what peft's modules compute, and the loss formed
only at target positions equals the loss over every position's logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainer.kernels import SparseDropout, dropped_positions, use_cpu_kernels


def test_sparse_dropout_drops_each_element_independently_with_probability_p() -> None:
    torch.manual_seed(0)
    p, n = 0.05, 2_000_000
    dropped = torch.zeros(n, dtype=torch.bool)
    dropped[dropped_positions(n, p)] = True
    rate = dropped.float().mean().item()
    assert abs(rate - p) < 4 * (p * (1 - p) / n) ** 0.5  # within four standard errors
    # Independent: a neighbour's being dropped tells nothing (P(both) = p^2), and every part
    # of the range is covered alike (the gaps reach the end, nothing piles up at the start).
    both = (dropped[1:] & dropped[:-1]).float().mean().item()
    assert abs(both - p * p) < 4 * (p * p / n) ** 0.5
    halves = dropped.view(2, -1).float().mean(dim=1)
    assert torch.allclose(halves, torch.full((2,), p), atol=0.002)
    # Runs of kept elements are geometric: P(gap > 20) = (1 - p)^20.
    gaps = torch.diff(dropped.nonzero().squeeze(1)) - 1
    assert abs((gaps >= 20).float().mean().item() - (1 - p) ** 20) < 0.01


def test_sparse_dropout_scales_what_it_keeps_and_is_off_in_eval() -> None:
    x = torch.randn(300, 70)
    dropout = SparseDropout(0.1)
    torch.manual_seed(1)
    out = dropout(x)
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / 0.9)
    assert 0.05 < 1 - kept.float().mean().item() < 0.15
    torch.manual_seed(1)
    assert torch.equal(dropout(x), out)  # seeding repeats it (resume is bit-exact)
    dropout.eval()
    assert dropout(x) is x
    assert SparseDropout(0.0)(x) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SparseDropout(1.0)


def test_sparse_dropout_gradient_is_zero_where_dropped() -> None:
    torch.manual_seed(2)
    x = torch.randn(50, 40, requires_grad=True)
    out = SparseDropout(0.3)(x)
    out.sum().backward()
    assert x.grad is not None
    expected = torch.where(out == 0, 0.0, 1 / 0.7)
    assert torch.allclose(x.grad, expected)


def lora(model_dir: Path, dropout: float) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    model = get_peft_model(base, config)
    for name, weight in model.named_parameters():  # lora_B starts at zero: give it a value
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.1)
    return model


def a_batch(seed: int = 0) -> Any:
    from trainer.data import Batch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 200, (2, 24), generator=generator)
    positions = torch.tensor([list(range(10)) + list(range(14)), list(range(24))])
    labels = ids.clone()
    labels[0, :4] = labels[0, 10:15] = labels[1, :6] = -100  # prompts
    return Batch(input_ids=ids, labels=labels, position_ids=positions, tokens=48, targets=0)


def test_fused_lora_layers_give_peft_s_loss_and_gradients(tiny_model: Path) -> None:
    from trainer.modeling import loss_sum

    reference, fused = lora(tiny_model, 0.0), lora(tiny_model, 0.0)
    assert use_cpu_kernels(fused) == use_cpu_kernels(lora(tiny_model, 0.0)) > 0
    batch = a_batch()
    losses = []
    for model in (reference, fused):
        model.train()
        loss = loss_sum(model, batch)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    grads = {n: p.grad for n, p in reference.named_parameters() if p.requires_grad}
    for name, weight in fused.named_parameters():
        if weight.requires_grad:
            assert weight.grad is not None
            torch.testing.assert_close(weight.grad, grads[name], rtol=1e-4, atol=1e-6)


def test_fused_layers_fall_back_to_peft_when_merged_or_disabled(tiny_model: Path) -> None:
    reference, fused = lora(tiny_model, 0.0), lora(tiny_model, 0.0)
    use_cpu_kernels(fused)
    ids = torch.randint(5, 200, (1, 12))
    with torch.no_grad():
        for model in (reference, fused):
            model.eval()
        same = [reference(input_ids=ids).logits, fused(input_ids=ids).logits]
        with reference.disable_adapter(), fused.disable_adapter():
            same += [reference(input_ids=ids).logits, fused(input_ids=ids).logits]
        for model in (reference, fused):
            model.merge_adapter()
        same += [reference(input_ids=ids).logits, fused(input_ids=ids).logits]
    for first, second in zip(same[::2], same[1::2], strict=True):
        torch.testing.assert_close(first, second, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(same[0], same[2])  # the adapter did change the output


def test_loss_at_target_positions_equals_the_loss_over_all_logits(tiny_model: Path) -> None:
    """The former formula (every position's logits, ignore_index, rows as rows) as the
    reference, with the trainer's per-example attention."""
    from trainer.attention import use_packed_attention
    from trainer.modeling import IGNORE_INDEX, loss_sum

    model = lora(tiny_model, 0.0)
    use_packed_attention(model)
    model.eval()
    batch = a_batch(3)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids).logits
        targets = batch.labels.roll(-1, dims=1)
        targets = targets.masked_fill(batch.position_ids.roll(-1, dims=1) == 0, IGNORE_INDEX)
        targets[:, -1] = IGNORE_INDEX
        expected = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )
        assert loss_sum(model, batch).item() == pytest.approx(expected.item(), rel=1e-5)
        no_targets = a_batch(3)
        no_targets.labels.fill_(IGNORE_INDEX)
        assert loss_sum(model, no_targets).item() == 0.0
