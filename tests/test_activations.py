import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from normlab import data, train  # noqa: E402
from normlab.activations import ActivationStats, l2_norm, named_layers  # noqa: E402


@pytest.fixture
def tiny(data_dir):
    """30 CIFAR-10 train images (3 per class) in batches of 8 (4 steps per epoch), 10 test images."""
    return data.loaders("cifar10", 8, data_dir=data_dir, subset=3, test_subset=1, seed=0)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10))


def test_named_layers():
    net = small_net()
    convs = named_layers(net, nn.Conv2d)
    assert list(convs) == ["0", "2"] and convs["2"] is net[2]
    assert list(named_layers(net)) == [str(i) for i in range(7)]


def test_records_over_two_fit_calls_and_hooks_removed(tiny):
    net = small_net()
    layers = named_layers(net, nn.Conv2d, nn.ReLU)
    stats = ActivationStats(layers, every=3, bins=8)
    train.fit(net, tiny, 2, 0.05, callbacks=[stats], progress=False)  # steps 0..7
    assert not stats.hooked and all(not m._forward_hooks for m in net.modules())
    train.fit(net, tiny, 1, 0.05, schedule="sgdr", callbacks=[stats], progress=False)  # steps 8..11
    assert all(not m._forward_hooks for m in net.modules())
    assert stats.fit_starts == [0, 8]
    assert stats.steps == [0, 3, 6, 9]  # every 3rd step, counted across both calls
    assert stats.names == ["0", "1", "2", "3"]
    for key in ("mean", "std", "dead", "grad_norm", "param_norm"):
        series = stats.series(key)
        assert list(series) == stats.names and all(len(v) == 4 for v in series.values())
    assert stats.hist("2").shape == (8, 4)
    assert torch.allclose(stats.hist("2").sum(0), torch.ones(4))
    # ReLU outputs are >= 0 with many exact zeros; ReLU modules have no parameters
    assert all(v >= 0 for v in stats.series("mean")["1"])
    assert all(math.isnan(v) for v in stats.series("grad_norm")["1"])
    assert all(v > 0 for v in stats.series("grad_norm")["0"])
    assert all(v > 0 for v in stats.series("param_norm")["0"])
    assert "layer" in stats.summary() and len(stats.summary().splitlines()) == 5
    assert stats.summary(keys=("mean", "std")).splitlines()[0].split() == ["layer", "mean", "std"]


def test_values_on_a_known_input():
    layer = nn.Identity()
    x = torch.tensor([[-3.0, -0.1, 0.0, 0.2, 0.6, 1.0, 2.5, 12.0]])
    with ActivationStats({"id": layer}, bins=4, hist_range=(0, 4), grads=False) as stats:
        layer(x)
        stats.end_step()
    assert stats.steps == [0]
    rec = {k: v["id"][0] for k, v in ((k, stats.series(k)) for k in ("mean", "std", "dead"))}
    assert rec["mean"] == pytest.approx(x.mean().item())
    assert rec["std"] == pytest.approx(x.std().item())  # unbiased, as torch.std
    assert rec["dead"] == pytest.approx(4 / 8)  # |a| < 1 (the first bin's width): -0.1, 0, 0.2, 0.6
    # |a| = 3, .1, 0, .2, .6, 1, 2.5, 12 -> bins [0,1) [1,2) [2,3) [3,4]; 12 is clamped into the last bin
    assert stats.hist("id")[:, 0].tolist() == pytest.approx([4 / 8, 1 / 8, 1 / 8, 2 / 8])
    assert not stats.hooked


@pytest.mark.parametrize("bins, hist_range", [(40, (0, 10)), (7, (0.5, 3.3)), (300, (0, 1))])
def test_histogram_counts_equal_torch_histc(bins, hist_range):
    """The counts are torch.histc's of |a| clamped into the range, also for values at and one or
    two float32 steps beside every bin edge, below and above the range, and infinite."""
    lo, hi = hist_range
    edges = lo + torch.arange(bins + 1, dtype=torch.float32) * ((hi - lo) / bins)
    near = [edges]
    for direction in (math.inf, -math.inf):
        x = edges
        for _ in range(2):
            x = torch.nextafter(x, torch.full_like(x, direction))
            near.append(x)
    g = torch.Generator().manual_seed(0)
    a = torch.cat([*near, -torch.cat(near), (torch.rand(100_000, generator=g) - 0.5) * 3 * hi,
                   torch.tensor([math.inf, -1e30, 0.0])]).view(1, -1)
    layer = nn.Identity()
    with ActivationStats({"id": layer}, bins=bins, hist_range=hist_range, grads=False) as stats:
        layer(a)
        stats.end_step()
        layer(torch.tensor([1.0, math.nan, 2.0 * hi]))  # a NaN: histc counts the other values
        stats.end_step()
    counts = stats.records["id"]["counts"]
    assert counts[0] == torch.histc(a.abs().clamp(lo, hi), bins, lo, hi).tolist()
    assert counts[1] == torch.histc(torch.tensor([1.0, math.nan, 2.0 * hi]).clamp(lo, hi), bins, lo, hi).tolist()
    assert sum(counts[0]) == a.numel() and sum(counts[1]) == 2
    dead = (a.abs() < stats.dead_below).float().mean().item()
    assert stats.series("dead")["id"][0] == dead  # the same float32 division as before


def test_fn_dead_below_and_eval_not_recorded():
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    x = torch.tensor([1.0, -2.0, 3.0, -4.0]).view(1, 1, 2, 2)
    stats = ActivationStats({"c": conv}, fn=lambda m, i, o: o.relu(), dead_below=1e-6, grads=False)
    stats.start()
    conv.eval()
    conv(x)  # eval forward: ignored
    conv.train()
    conv(x)
    stats.end_step()
    stats.stop()
    assert len(stats) == 1
    # relu of [x, -x] = [1, 0, 3, 0, 0, 2, 0, 4]: half are exact zeros
    assert stats.series("dead")["c"] == [0.5]
    assert stats.series("mean")["c"] == [pytest.approx(10 / 8)]


def test_grad_norm_matches_parameters(tiny):
    net = small_net()
    stats = ActivationStats(named_layers(net, nn.Conv2d), every=100)  # records step 0 only
    grads, params = {}, {}

    class Grab:  # runs after stats (same after_step call, later in the list)
        def after_step(self, step, **kw):
            if step == 0:
                for n in ("0", "2"):
                    ps = list(net[int(n)].parameters())
                    grads[n] = torch.cat([p.grad.flatten() for p in ps]).norm().item()
                    params[n] = torch.cat([p.detach().flatten() for p in ps]).norm().item()

    train.fit(net, tiny, 1, 0.05, callbacks=[stats, Grab()], progress=False)
    assert stats.steps == [0]
    for n in ("0", "2"):
        assert stats.series("grad_norm")[n][0] == pytest.approx(grads[n], rel=1e-5)
        assert stats.series("param_norm")[n][0] == pytest.approx(params[n], rel=1e-5)


def test_l2_norm_without_underflow():
    a, b = torch.tensor([3.0, -4.0]), torch.tensor([[12.0]])
    assert l2_norm(a) == pytest.approx(5.0)
    assert l2_norm(a, b) == pytest.approx(13.0)  # all values together
    assert l2_norm(torch.zeros(3), torch.empty(0)) == 0.0
    tiny = torch.full((1000,), 1e-32)
    assert tiny.norm().item() == 0.0  # float32 squares underflow...
    assert l2_norm(tiny) == pytest.approx(1e-32 * math.sqrt(1000), rel=1e-5)  # ...not here
    assert math.isnan(l2_norm(torch.tensor([1.0, float("nan")])))


def test_grad_norm_of_tiny_gradients():
    lin = nn.Linear(4, 1, bias=False)
    with ActivationStats({"lin": lin}) as stats:
        (lin(torch.ones(2, 4)).sum() * 1e-30).backward()  # gradient entries 2e-30
        stats.end_step()
    assert stats.series("grad_norm")["lin"][0] == pytest.approx(2e-30 * 2, rel=1e-5)  # sqrt(4) entries


def test_plots_draw(tiny):
    net = small_net()
    stats = ActivationStats(named_layers(net, nn.Conv2d, nn.ReLU), bins=10)
    train.fit(net, tiny, 1, 0.05, callbacks=[stats], progress=False)
    stats.plot_stats()
    stats.dead_chart()
    stats.plot_grad_norms()
    stats.plot_grad_norms(relative=True, cmap="viridis")
    stats.plot_stats(cmap="viridis")
    axes = stats.color_dim(ncols=2)
    assert axes.shape == (2, 2)
    plt.close("all")


def test_errors():
    with pytest.raises(TypeError):
        ActivationStats(nn.Linear(2, 2))
    with pytest.raises(ValueError):
        ActivationStats({})
    with pytest.raises(ValueError):
        ActivationStats([nn.Identity()], every=0)
    with pytest.raises(ValueError):
        ActivationStats([nn.Identity()], hist_range=(1, 1))
    with pytest.raises(ValueError):
        ActivationStats([nn.Identity()]).series("median")
    with pytest.raises(ValueError):
        ActivationStats([nn.Identity()]).summary(keys=("median",))


def test_records_keep_no_tensors(tiny):
    """What a record keeps is plain Python numbers. A small tensor kept from every record lands in
    the holes the step's freed activations leave in glibc's heap and pins them: the heap grew by
    about the activations' size per record (20 GB over chapter 4's deep run)."""
    net = small_net()
    stats = ActivationStats(named_layers(net, nn.Conv2d, nn.ReLU), every=1, bins=8)
    train.fit(net, tiny, 1, 0.05, callbacks=[stats], progress=False)
    assert len(stats) > 0

    def tensors(x):
        if isinstance(x, dict):
            return sum(tensors(v) for v in x.values())
        if isinstance(x, (list, tuple)):
            return sum(tensors(v) for v in x)
        return int(torch.is_tensor(x))
    assert tensors(stats.records) == 0


def test_state_round_trips_through_strict_json(tiny):
    """A run record keeps what the recorder saw (strict JSON: NaN as null); REUSE gives it back."""
    import json
    from normlab.files import to_strict_json
    net = small_net()
    stats = ActivationStats(named_layers(net, nn.Conv2d, nn.ReLU), every=2, bins=8)
    train.fit(net, tiny, 1, 0.05, callbacks=[stats], progress=False)
    stored = json.loads(to_strict_json(stats.state()))
    again = ActivationStats(named_layers(small_net(), nn.Conv2d, nn.ReLU), every=2, bins=8)
    again.load_state(stored)
    assert again.steps == stats.steps and again.fit_starts == stats.fit_starts
    assert again.summary() == stats.summary()
    assert all(torch.equal(again.hist(n), stats.hist(n)) for n in stats.names)
    assert all(math.isnan(v) for v in again.series("grad_norm")["1"])  # ReLU: no parameters
    rec = stored["records"]["0"]  # histograms kept as whole counts of the values they counted
    assert all(isinstance(c, int) for row in rec["counts"] for c in row)
    assert [sum(row) for row in rec["counts"]] == rec["numel"]
    # a record written before the counts kept the fractions: it still loads, to the same histograms
    older = json.loads(json.dumps(stored))
    for name, r in older["records"].items():
        r["hist"] = [[float(str(v)) for v in h] for h in stats.hist(name).T.numpy()]
        del r["counts"], r["numel"]
    old = ActivationStats(named_layers(small_net(), nn.Conv2d, nn.ReLU), every=2, bins=8)
    old.load_state(older)
    assert all(torch.equal(old.hist(n), stats.hist(n)) for n in stats.names)
    with pytest.raises(ValueError, match="recorded ActivationStats was made with"):
        ActivationStats(named_layers(small_net(), nn.Conv2d, nn.ReLU), every=3, bins=8).load_state(stored)
