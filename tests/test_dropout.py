import math

import pytest
import torch
import torch.nn.functional as F

from normlab import models, records
from normlab.dropout import Dropout, dropout, drop_positions, resolve_sampler


def test_gaps_drop_each_value_with_probability_p_independently():
    torch.manual_seed(0)
    p, n, blocks = 0.01, 4_000_000, 400
    dropped = torch.zeros(n, dtype=torch.bool)
    dropped[drop_positions(n, p)] = True
    # the count is Binomial(n, p): within 5 standard deviations
    assert abs(int(dropped.sum()) - n * p) < 5 * math.sqrt(n * p * (1 - p))
    # no clumping: the counts of blocks vary as binomial counts do (ratio of variances near 1)
    per_block = dropped.view(blocks, -1).sum(1).double()
    expected = (n / blocks) * p * (1 - p)
    assert 0.75 < per_block.var().item() / expected < 1.3
    # neighbours independent: both of a pair dropped about p^2 of the time
    both = (dropped[1:] & dropped[:-1]).double().mean().item()
    assert abs(both - p * p) < 5 * math.sqrt(p * p / n)


def test_positions_are_sorted_distinct_in_range_and_repeat_with_the_seed():
    torch.manual_seed(3)
    a = drop_positions(10_000, 0.2)
    torch.manual_seed(3)
    b = drop_positions(10_000, 0.2)
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() < 10_000 and bool((a[1:] > a[:-1]).all())
    # gaps drawn one at a time: many more batches, the same positions (one stream of draws)
    torch.manual_seed(3)
    assert torch.equal(drop_positions(10_000, 0.2, batch=1), a)
    torch.manual_seed(0)
    assert drop_positions(3, 0.999).tolist() == [0, 1, 2]  # all dropped (each with probability 0.999)


@pytest.mark.parametrize("channels_last", [False, True])
def test_kept_values_are_torchs_and_the_gradient_is_the_mask(channels_last):
    torch.manual_seed(1)
    x = torch.randn(8, 6, 5, 5)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = dropout(x, 0.3, sampler="gaps")
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    kept = y != 0
    torch.manual_seed(2)
    ref = F.dropout(x.detach(), 0.3)  # torch's scaling of what it keeps
    both = kept & (ref != 0)
    assert torch.equal(y.detach()[both], ref[both])
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() / (1 - 0.3))


def test_eval_edges_and_errors():
    x = torch.randn(4, 3)
    layer = Dropout(0.5, "gaps").eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(dropout(x, 0.0, sampler="gaps"), x)
    assert not dropout(x, 1.0, sampler="gaps").any()
    t = dropout(x.t(), 0.5, sampler="gaps")  # a transposed view: dropped in a contiguous copy
    assert t.shape == (3, 4) and torch.equal(t[t != 0], x.t()[t != 0] * 2)
    with pytest.raises(ValueError, match="unknown dropout sampler 'fast'; accepted: auto, torch, gaps"):
        dropout(x, 0.5, sampler="fast")
    with pytest.raises(ValueError, match=r"in \[0, 1\], got 1.5"):
        dropout(x, 1.5, sampler="gaps")
    with pytest.raises(ValueError, match="dropout_sampler='fast' is not supported"):
        models.Erav1s8Net(dropout_sampler="fast")


def test_erav1s8_draws_its_masks_as_gaps_on_the_cpu_and_with_torch_elsewhere():
    net = models.Erav1s8Net()
    drop = net.cblock1[0].drop.train()
    assert drop.sampler == "auto" and "sampler='auto'" in repr(drop)
    assert [resolve_sampler("auto", d) for d in ("cpu", "cuda", "mps")] == ["gaps", "torch", "torch"]
    assert resolve_sampler("torch", "cpu") == "torch" and resolve_sampler("gaps", "cuda") == "gaps"
    x = torch.ones(200_000)
    draws = []
    for layer in (drop, Dropout(0.01, "gaps"), torch.nn.Dropout(0.01)):
        torch.manual_seed(0)
        draws.append(layer(x))
    auto, gaps, torchs = draws
    assert torch.equal(auto, gaps) and not torch.equal(auto, torchs)  # another stream than torch's
    assert abs((auto == 0).float().mean().item() - 0.01) < 0.002     # the same rate
    # torch's sampler reads as nn.Dropout does; each sampler is another structure in a record
    fixed = models.Erav1s8Net(dropout_sampler="torch")
    assert repr(fixed.cblock1[0].drop) == repr(torch.nn.Dropout(0.01))
    assert records.model_structure(net) != records.model_structure(fixed)
