"""add_copy_logit: a bonus on the class each position holds now, and nowhere else."""

import pytest
import torch

from lit_rlseq.nn.copy_logit import add_copy_logit


def test_bonus_lands_on_the_current_class_only():
    logits = torch.zeros(2, 3, 4)  # classes last
    current = torch.tensor([[0, 3, 1], [2, 2, 0]])
    out = add_copy_logit(logits, current, torch.tensor(5.0))
    assert torch.equal(out.argmax(-1), current)
    assert out.sum() == 5.0 * current.numel() and (out == 5.0).sum() == current.numel()


def test_class_dimension_in_the_middle_and_gradient_reaches_the_bonus():
    logits = torch.randn(2, 7, 3, 3)  # [N, C, H, W]
    current = torch.randint(0, 7, (2, 3, 3))
    bonus = torch.tensor(2.0, requires_grad=True)
    out = add_copy_logit(logits, current, bonus, dim=1)
    expected = logits + 2.0 * torch.nn.functional.one_hot(current, 7).permute(0, 3, 1, 2)
    assert torch.allclose(out, expected)
    out.sum().backward()
    assert bonus.grad == current.numel()


def test_mismatched_shapes_name_both():
    with pytest.raises(ValueError, match=r"current ids \(2, 4\).*\(2, 3, 5\)"):
        add_copy_logit(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long), torch.tensor(1.0))
