import json
import math

import pytest
import torch
import torch.nn as nn

from normlab import data, models, schedules, train
from normlab.augment import seed_augment
from normlab.lr_finder import lr_find


@pytest.fixture
def tiny(data_dir):
    """50 CIFAR-10 train images (5 per class), 20 test images, batches of 16."""
    def make(seed=0, **kw):
        return data.loaders("cifar10", 16, data_dir=data_dir, subset=5, test_subset=2, seed=seed,
                            augment=seed_augment("fastai"), **kw)
    return make


def convnet(seed=0):
    torch.manual_seed(seed)
    return models.ConvNet()


def test_fit_returns_history_and_json_lines(tiny, capsys):
    h = train.fit(convnet(), tiny(), 2, 0.05, log="json", progress=False)
    assert len(h) == 2 and h.stopped is None
    e = h.last
    for key in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time", "time"):
        assert key in e
    assert 0 <= e["test_acc"] <= 1 and e["time"] >= h.epochs[0]["time"] > 0
    assert len(h.steps["loss"]) == len(h.steps["lr"]) == 2 * 4  # 50 images / 16 = 4 batches
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]
    assert set(json.loads(lines[0])) == {"epoch", "test_acc", "time"}
    again = train.History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert again.epochs == h.epochs


def test_training_learns_something(tiny):
    dl = tiny()
    model = convnet()
    before = train.evaluate(model, dl.train)["loss"]
    train.fit(model, dl, 8, 0.05, progress=False)
    assert train.evaluate(model, dl.train)["loss"] < before


def test_same_seed_is_bitwise_repeatable(tiny):
    hashes = []
    for _ in range(2):
        model = convnet(seed=1)
        h = train.fit(model, tiny(), 2, 0.05, seed=7, progress=False)
        hashes.append((train.state_hash(model), h.steps["loss"]))
    assert hashes[0] == hashes[1]
    other = convnet(seed=1)
    train.fit(other, tiny(), 2, 0.05, seed=8, progress=False)
    assert train.state_hash(other) != hashes[0][0]


def test_divergence_stops_with_message_and_last_good_weights(tiny):
    model = convnet()
    states = [train.state_hash(model)]  # states[k] = weights used by step k

    class Track:
        def after_step(self, model, **_):
            states.append(train.state_hash(model))

    h = train.fit(model, tiny(), 3, 1e4, progress=False, callbacks=[Track()])
    assert h.stopped is not None
    for word in ("epoch", "step", "learning rate", "loss became"):
        assert word in h.stopped
    assert len(h) < 3
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # restored: the weights at which the last finite loss was computed, not the diverged ones
    finite_steps = len(h.steps["loss"])
    assert train.state_hash(model) == states[finite_steps - 1] != states[finite_steps]


def test_max_loss_stops_a_finite_but_exploding_run(tiny):
    h = train.fit(convnet(), tiny(), 2, 0.05, progress=False, max_loss=0.5)  # CE starts near ln 10 = 2.3
    assert h.stopped is not None and "above max_loss=0.5" in h.stopped and "epoch 0, step 0" in h.stopped
    assert len(h) == 0 and h.steps["loss"] == []


class NanInEval(nn.Module):
    """A ConvNet whose eval-mode outputs are NaN: training losses stay finite, the test loss is not
    (as when eval-mode statistics or the last step's weights have blown up)."""

    def __init__(self):
        super().__init__()
        self.net = convnet()

    def forward(self, x):
        out = self.net(x)
        return out if self.training else out * float("nan")


def test_a_non_finite_evaluation_loss_stops_the_run(tiny):
    h = train.fit(NanInEval(), tiny(), 3, 0.05, progress=False)
    assert h.stopped is not None and len(h) == 0
    for words in ("test loss became nan", "after epoch 0", "step 3", "learning rate 0.05"):
        assert words in h.stopped
    assert all(math.isfinite(v) for v in h.steps["loss"])


def test_checkpoint_resume_equals_uninterrupted(tiny, tmp_path):
    ref_model = convnet(seed=3)
    ref = train.fit(ref_model, tiny(seed=3), 3, 0.05, momentum=0.9, schedule="linear", seed=3, progress=False)

    class StopAfterFirstEpoch:
        def after_epoch(self, epoch, **_):
            if epoch == 0:
                raise train.CancelFit("simulated interruption")

    ck = tmp_path / "run" / "checkpoint.pt"
    model = convnet(seed=3)
    part = train.fit(model, tiny(seed=3), 3, 0.05, schedule="linear", seed=3, progress=False,
                     checkpoint=ck, callbacks=[StopAfterFirstEpoch()])
    assert part.stopped.startswith("cancelled") and len(part) == 1 and ck.exists()
    assert not list(ck.parent.glob(".*tmp"))  # atomic: no temporary left behind

    fresh = convnet(seed=99)  # weights come from the checkpoint
    done = train.fit(fresh, tiny(seed=3), 3, 0.05, schedule="linear", seed=3, progress=False,
                     checkpoint=ck, resume=ck)
    assert train.state_hash(fresh) == train.state_hash(ref_model)
    assert [e["test_acc"] for e in done.epochs] == [e["test_acc"] for e in ref.epochs]
    assert done.steps["loss"] == ref.steps["loss"]


def test_save_atomic_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "ck.pt"
    train.save_atomic({"a": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        train.save_atomic({"bad": Unpicklable()}, path)
    assert torch.load(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_schedules_follow_the_seeds():
    s = schedules.make_schedule("sgdr", 0.1)
    s.setup(2 * 196, 196)  # fastai: 196 batches per epoch, cycle_len=1
    assert s.lr(0) == pytest.approx(0.001) and s.lr(9) == pytest.approx(0.001)  # warm-up: nb/20 = 9.8 its
    assert s.lr(10) == pytest.approx(0.05 * (1 + math.cos(math.pi * 10 / 196)))
    assert s.lr(196) == pytest.approx(0.1)  # restart each epoch, warm-up only at the start of the call
    lin = schedules.make_schedule("linear", 0.1)
    lin.setup(5 * 79, 79)
    assert lin.lr(0) == 0.1 and lin.lr(79) == pytest.approx(0.1 * (1 - 1 / 5)) and lin.lr(5 * 79 - 1) < 0.001
    one = schedules.make_schedule("onecycle", 1.0)
    one.setup(100, 10)
    lrs = [one.lr(i) for i in range(100)]
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 25 and lrs[-1] < 1e-3
    with pytest.raises(ValueError, match="accepted: constant, sgdr, linear, plateau, onecycle"):
        schedules.make_schedule("cosine", 0.1)
    with pytest.raises(ValueError, match="positive finite"):
        schedules.make_schedule("constant", -1)


def test_plateau_matches_torch():
    losses = [1.0, 0.9, 0.95, 0.9, 0.89999, 0.7, 0.71, 0.72]
    ours = schedules.Plateau(0.01, factor=0.3, patience=0)
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.01)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.3, patience=0)
    for epoch, loss in enumerate(losses):
        ours.epoch_end({"epoch": epoch, "test_loss": loss})
        ref.step(loss)
        assert ours.lr(0) == pytest.approx(opt.param_groups[0]["lr"])
    assert ours.reductions == [2, 3, 4, 6, 7]


def test_optimizers():
    params = [nn.Parameter(torch.zeros(2))]
    sgd = train.make_optimizer(params, "sgd", 0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 5e-4
    adam = train.make_optimizer(params, "adam", 1e-3, eps=1e-7)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["eps"] == 1e-7
    with pytest.raises(ValueError, match="accepted: sgd, adam"):
        train.make_optimizer(params, "rmsprop")


@pytest.mark.parametrize("opt, kw", [("sgd", dict(momentum=0.9)), ("sgd", dict(momentum=0.9, nesterov=True, weight_decay=5e-4)),
                                     ("adam", dict(eps=1e-7)), ("adam", dict(weight_decay=1e-4))])
def test_optimizers_match_torchs_per_parameter_loop_bitwise(opt, kw):
    """make_optimizer's foreach steps give the weights torch's for-loop gives (the default on the
    CPU, which made the committed runs), bit for bit."""
    torch.manual_seed(0)
    nets = [models.build_model("lenet", bn="standard") for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    lr = 0.05
    ours = train.make_optimizer(nets[0].parameters(), opt, lr, **kw)
    loop = (torch.optim.SGD(nets[1].parameters(), lr=lr, foreach=False, **kw) if opt == "sgd" else
            torch.optim.Adam(nets[1].parameters(), lr=lr, foreach=False, **kw))
    assert ours.defaults["foreach"]
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        x, y = torch.randn(8, 1, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
        for net, o in zip(nets, (ours, loop)):
            o.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            o.step()
    assert all(torch.equal(a, b) for a, b in zip(*(n.state_dict().values() for n in nets)))


def test_fit_rejects_bad_arguments(tiny):
    with pytest.raises(ValueError, match="epochs must be a non-negative int, got -1"):
        train.fit(convnet(), tiny(), -1)
    with pytest.raises(TypeError, match="normlab.data.Loaders"):
        train.fit(convnet(), [(torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long))], 1)
    with pytest.raises(ValueError, match="unknown log 'xml'"):
        train.fit(convnet(), tiny(), 1, log="xml")


def test_lr_find_restores_weights_and_stops_on_divergence(tiny):
    model, dl = convnet(), tiny()
    before = train.state_hash(model)
    order = dl.train.state_dict()["generator"].clone()
    res = lr_find(model, dl, 1e-4, 1e4, num_it=40)
    assert train.state_hash(model) == before
    assert torch.equal(dl.train.state_dict()["generator"], order)
    assert res.stopped_early and 2 < len(res.lrs) < 40
    ratios = [b / a for a, b in zip(res.lrs, res.lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios))  # exponential ramp
    assert res.lrs[0] <= res.suggestion() <= res.lrs[-1]


def test_progress_bar_and_callbacks(tiny, capsys):
    seen = []

    class Record:
        def after_step(self, step, loss, lr, **_):
            seen.append((step, loss, lr))

    train.fit(convnet(), tiny(), 1, 0.01, progress=True, callbacks=[Record()])
    assert [s for s, _, _ in seen] == [0, 1, 2, 3]
    assert "epoch 1/1" in capsys.readouterr().err


def test_channels_last_gives_same_result_shape(tiny):
    a, b = convnet(), convnet()
    ha = train.fit(a, tiny(), 1, 0.01, channels_last=False, progress=False)
    hb = train.fit(b, tiny(), 1, 0.01, channels_last=True, progress=False)
    assert ha.steps["loss"] == pytest.approx(hb.steps["loss"], rel=1e-4)
    assert b.layers[0].weight.is_contiguous()  # handed back in the default layout


def test_fit_evaluates_the_validation_split_when_there_is_one(data_dir):
    dl = data.loaders("mnist_tairtahar", 16, data_dir=data_dir, subset=3, test_subset=2, seed=0)
    assert dl.val is not None and len(dl.val.data) == 20
    torch.manual_seed(0)
    h = train.fit(models.LeNet("lenet_bn1"), dl, 1, 1e-3, opt="adam", progress=False)
    e = h.last
    assert 0 <= e["val_acc"] <= 1 and e["val_loss"] > 0 and "test_acc" in e
    assert "val_acc" in h.table().splitlines()[0]
    model = models.LeNet("lenet_bn1")
    assert train.evaluate(model.eval(), dl.val)["n"] == 20


def test_accuracy_by_batch_size_depends_on_the_batch_only_for_batch_statistics(data_dir):
    dl = data.loaders("cifar2", 8, data_dir=data_dir, subset=10, test_subset=20, seed=0)
    assert dl.test.with_batch_size(5).batch_size == 5 and dl.test.batch_size == 8
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        dl.test.with_batch_size(0)
    torch.manual_seed(0)
    batchstat = models.ResNetSpec()
    train.fit(batchstat, dl, 1, 0.05, progress=False)
    accs = train.accuracy_by_batch_size(batchstat, dl.test, (2, 40))
    torch.manual_seed(0)
    running = models.ResNetSpec(norm="batch")
    train.fit(running, dl, 1, 0.05, progress=False)
    flat = train.accuracy_by_batch_size(running, dl.test, (2, 40))
    assert flat[2] == flat[40]
    # batch statistics: predictions of the same images change with the batch they are in
    out2 = torch.cat([batchstat.eval()(x) for x, _ in dl.test.with_batch_size(2)])
    out40 = torch.cat([batchstat(x) for x, _ in dl.test.with_batch_size(40)])
    assert not torch.allclose(out2, out40, atol=1e-4) and set(accs) == {2, 40}


def test_evaluate_gives_fastai_per_batch_mean_beside_the_exact_accuracy():
    """fastai 0.7's metric is the unweighted mean of per-batch accuracies: with batches of 4 and 1,
    getting the lone last image right counts as much as the whole first batch."""
    class Fixed(nn.Module):
        def forward(self, x):
            return x  # the input already holds the logits
    x = torch.tensor([[1.0, 0.0]] * 5)
    y = torch.tensor([0, 1, 1, 1, 0])  # batch 1: 1 of 4 right; batch 2: 1 of 1 right
    ev = train.evaluate(Fixed(), [(x[:4], y[:4]), (x[4:], y[4:])], device="cpu", amp="fp32")
    assert ev["acc"] == pytest.approx(2 / 5)
    assert ev["acc_batch_mean"] == pytest.approx((1 / 4 + 1) / 2)


def test_fit_records_the_per_batch_mean_test_accuracy(tiny):
    h = train.fit(convnet(), tiny(), 1, 0.05, progress=False)
    e = h.last  # 20 test images in batches of 16 and 4
    assert 0 <= e["test_acc_batch_mean"] <= 1 and "test_acc_batch_mean" in e
