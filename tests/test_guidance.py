"""Guidance: recorded layers, the mapping, a guide that stays frozen, the loss and its gradients,
the precomputed guide bank, the schedule, and a tiny guided run that learns."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from untrainable import guidance as G
from untrainable.models import FCN, ResNet, deep_fcn, resnet18
from untrainable.runtime import seed_everything
from untrainable.similarity import linear_cka
from untrainable.train import FitSettings, fit

CPU = torch.device("cpu")


def tiny_resnet(seed: int = 0) -> ResNet:
    torch.manual_seed(seed)
    return ResNet((1, 1), "basic", width=4, image_size=8)


def tiny_fcn(depth: int = 5, seed: int = 1) -> FCN:
    torch.manual_seed(seed)
    return deep_fcn(in_features=3 * 8 * 8, width=16, depth=depth, first_width=None)


def x8(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- recorded layers


def test_resnet18_records_21_layers_in_forward_order_without_the_logits():
    layers = G.guidance_layers(resnet18(width=4), torch.randn(2, 3, 32, 32))
    # stem conv, 16 block convs, 3 downsample convs, the average pool; fc (the logits) is dropped
    assert len(layers) == 21
    assert layers[:3] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    assert layers[5:8] == ["layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0"]
    assert layers[-1] == "avgpool" and "fc" not in layers


def test_fcn_records_linear_layers_only_and_plain_convnet_has_no_downsample():
    layers = G.guidance_layers(tiny_fcn(depth=4), x8(2))
    assert layers == ["features.1", "features.5", "features.9", "features.13"]  # not BN, ReLU, dropout, logits
    plain = ResNet((1, 1), "basic", width=4, image_size=8, residual=False)
    assert not any("downsample" in n for n in G.guidance_layers(plain, x8(2)))


def test_forward_order_not_definition_order():
    class Swapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.Linear(4, 3)
            self.early = nn.Linear(5, 4)
            self.head = nn.Linear(3, 2)

        def forward(self, x):
            return self.head(self.late(self.early(x)))

    assert G.guidance_layers(Swapped(), torch.randn(2, 5)) == ["early", "late"]


def test_transformer_layer_counts_once_and_sequence_first_is_an_error():
    class Seq(nn.Module):
        def __init__(self, batch_first=True):
            super().__init__()
            self.rnn = nn.RNN(4, 6, batch_first=batch_first)
            self.block = nn.TransformerEncoderLayer(6, 2, 12, dropout=0.0, batch_first=True)
            self.norm = nn.LayerNorm(6)
            self.head = nn.Linear(6, 3)

        def forward(self, x):
            h, _ = self.rnn(x)
            return self.head(self.norm(self.block(h)))

    assert G.guidance_layers(Seq(), torch.randn(3, 5, 4)) == ["rnn", "block", "norm"]
    with pytest.raises(ValueError, match="batch_first=False"):
        G.guidance_layers(Seq(batch_first=False), torch.randn(5, 3, 4))


def test_a_shared_layer_is_an_error():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.layer(self.layer(x)))

    with pytest.raises(ValueError, match="more than once"):
        G.guidance_layers(Shared(), torch.randn(2, 4))


# ----------------------------------------------------------------------------- mapping


def test_even_mapping_values():
    assert G.even_mapping(3, 5) == [(0, 0), (1, 2), (2, 4)]
    assert G.even_mapping(4, 4) == [(i, i) for i in range(4)]
    assert G.even_mapping(1, 7) == [(0, 0)]
    pairs = G.even_mapping(21, 24)  # ResNet-18 guide, 24 target layers
    assert len(pairs) == 21 and pairs[0] == (0, 0) and pairs[-1] == (20, 23)
    assert [t for _, t in pairs] == [round(i * 23 / 20) for i in range(21)]


@pytest.mark.parametrize("g,s", [(21, 8), (50, 3), (9, 2), (7, 6)])
def test_more_guide_than_target_layers_gives_one_pair_per_target_layer(g, s):
    pairs = G.even_mapping(g, s)
    assert [t for _, t in pairs] == list(range(s))
    assert pairs[0] == (0, 0) and pairs[-1] == (g - 1, s - 1)
    assert all(round(i * (s - 1) / (g - 1)) == t for i, t in pairs)  # each pair obeys the paper's rule
    assert len({i for i, _ in pairs}) == s


def test_explicit_mapping_and_clear_errors():
    guide, target = ["a", "b", "c"], ["x", "y"]
    assert G.resolve_mapping(guide, target, [(0, 1), ("c", "x")]) == [("a", "y"), ("c", "x")]
    with pytest.raises(G.MappingError, match="out of range.*3 recorded layers"):
        G.resolve_mapping(guide, target, [(3, 0)])
    with pytest.raises(G.MappingError, match="empty"):
        G.resolve_mapping(guide, target, [])
    with pytest.raises(G.MappingError, match="not one of"):
        G.resolve_mapping(guide, target, [("zz", 0)])
    with pytest.raises(G.MappingError, match="twice"):
        G.resolve_mapping(guide, target, [(0, 0), ("a", "x")])
    with pytest.raises(G.MappingError, match="no module named"):
        G.resolve_mapping(guide, target, [(0, "nope")], target=tiny_fcn())
    with pytest.raises(G.MappingError):
        G.even_mapping(0, 3)


# ----------------------------------------------------------------------------- the loss


def reference_loss(target, guide, pairs, x, y, alpha):
    """The loss written out the slow way: a separate guide pass, explicit hooks, CKA per pair."""
    acts = {}
    handles = [dict(target.named_modules())[t].register_forward_hook(
        lambda m, a, o, t=t: acts.__setitem__(t, o.clone())) for _, t in pairs]
    logits = target(x)
    for h in handles:
        h.remove()
    with torch.no_grad():
        gacts = {}
        handles = [dict(guide.named_modules())[g].register_forward_hook(
            lambda m, a, o, g=g: gacts.__setitem__(g, o.clone())) for g, _ in pairs]
        guide.eval()
        guide(x)
        for h in handles:
            h.remove()
    terms = [1 - linear_cka(acts[t], gacts[g]) for g, t in pairs]
    return F.cross_entropy(logits, y) + alpha * torch.stack(terms).sum()


def test_loss_and_gradients_match_the_definition_with_one_target_forward():
    x, y = x8(32), torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(0))
    target, guide = tiny_fcn(), tiny_resnet()
    loss_fn = G.GuidanceLoss(target, guide, x[:2], alpha=0.7)
    assert len(loss_fn.pairs) == min(len(loss_fn.guide_layers), len(loss_fn.target_layers))
    calls = []
    h = target.register_forward_hook(lambda *a: calls.append(1))
    target.train()
    torch.manual_seed(5)  # same dropout masks in both computations
    loss, logits = loss_fn(target, x, y)
    h.remove()
    assert len(calls) == 1 and logits.shape == (32, 10)
    grads = torch.autograd.grad(loss, list(target.parameters()))
    torch.manual_seed(5)
    ref = reference_loss(target, guide, loss_fn.pairs, x, y, 0.7)
    ref_grads = torch.autograd.grad(ref, list(target.parameters()))
    assert torch.allclose(loss.double(), ref.double(), atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(grads, ref_grads))
    entry = loss_fn.log[-1]
    assert len(entry["terms"]) == len(loss_fn.pairs) and abs(entry["guidance"] - sum(entry["terms"])) < 1e-5


def test_guidance_gradient_descends_the_cka_distance():
    x = x8(64)
    target, guide = tiny_fcn(depth=3), tiny_resnet()
    loss_fn = G.GuidanceLoss(target, guide, x[:2], task_loss=lambda logits, y: logits.sum() * 0)
    target.eval()  # no dropout: a deterministic objective
    opt = torch.optim.SGD(target.parameters(), lr=0.05)
    values = []
    for _ in range(20):
        target.train()
        loss, _ = loss_fn(target, x, torch.zeros(64, dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss.item())
    assert values[-1] < values[0] - 0.05


@pytest.mark.parametrize("distance", ["debiased_cka", "procrustes", "rsa"])
def test_other_distances_plug_in(distance):
    x, y = x8(16), torch.randint(0, 10, (16,))
    target, guide = tiny_fcn(depth=3), tiny_resnet()
    loss_fn = G.GuidanceLoss(target, guide, x[:2], distance=distance)
    target.train()
    loss, _ = loss_fn(target, x, y)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in target.parameters())
    with pytest.raises(ValueError, match="unknown distance"):
        G.GuidanceLoss(target, guide, x[:2], distance="cosine")


def test_linear_cka_against_gram_equals_linear_cka():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 7, generator=gen).relu(), torch.randn(40, 3, 5, 5, generator=gen).relu() + 2
    yc = y.flatten(1) - y.flatten(1).mean(0)
    assert torch.allclose(G.linear_cka_against_gram(x, yc @ yc.T), linear_cka(x, y), atol=1e-6)
    wide = torch.randn(10, 30, generator=gen)  # d > n: the n x n form of the target's norm
    yc10 = y.flatten(1)[:10] - y.flatten(1)[:10].mean(0)
    assert torch.allclose(G.linear_cka_against_gram(wide, yc10 @ yc10.T), linear_cka(wide, y[:10]), atol=1e-6)


@pytest.mark.parametrize("bank_mode", [None, "gram"])
def test_a_batch_of_identical_examples_counts_every_pair_as_unrelated_without_crashing(bank_mode):
    """Every layer is constant over such a batch, so every CKA is 0/0: the similarity raises, the loss
    counts each pair as distance 1 with zero gradient, logs and warns, and the task still trains."""
    x_train, y = x8(16), torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
    target, guide = tiny_fcn(depth=3), tiny_resnet()
    plain = G.GuidanceLoss(target, guide, x_train[:2])
    bank = None if bank_mode is None else G.GuideBank(guide, [g for g, _ in plain.pairs], x_train, mode=bank_mode)
    loss_fn = G.GuidanceLoss(target, guide, x_train[:2], bank=bank)
    idx = torch.zeros(8, dtype=torch.long)  # the first example, eight times
    xb = G.IndexedInputs(x_train)[idx] if bank is not None else x_train[idx]
    target.train()
    for m in target.modules():
        if isinstance(m, (nn.Dropout, nn.BatchNorm1d)):
            m.eval()  # BatchNorm in training mode would zero the layer exactly; eval keeps the raw constant
    with pytest.warns(RuntimeWarning, match="counted as unrelated"):
        loss, logits = loss_fn(target, xb, y[idx])
    n_pairs = len(loss_fn.pairs)
    assert loss_fn.log[-1]["constant_pairs"] == list(range(n_pairs))
    assert loss_fn.log[-1]["terms"] == [1.0] * n_pairs
    task = F.cross_entropy(logits, y[idx])
    assert loss.item() == pytest.approx(task.item() + n_pairs, abs=1e-5)
    grads = torch.autograd.grad(loss, list(target.parameters()))
    task_grads = torch.autograd.grad(F.cross_entropy(target(x_train[idx]), y[idx]), list(target.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, task_grads))  # guidance adds nothing


def test_linear_cka_against_gram_of_a_constant_side_raises():
    from untrainable.similarity import ConstantRepresentationError

    x = torch.randn(10, 4)
    xc = x - x.mean(0)
    with pytest.raises(ConstantRepresentationError, match="target's activations"):
        G.linear_cka_against_gram(torch.ones(10, 4), xc @ xc.T)
    with pytest.raises(ConstantRepresentationError, match="guide's centred Gram matrix is zero"):
        G.linear_cka_against_gram(x, torch.zeros(10, 10))


@pytest.mark.parametrize("mode", ["gram", "features"])
def test_guide_bank_gives_the_same_loss_and_gradients(mode):
    x_train, y = x8(48), torch.randint(0, 10, (48,), generator=torch.Generator().manual_seed(1))
    target, guide = tiny_fcn(), tiny_resnet()
    online = G.GuidanceLoss(target, guide, x_train[:2])
    bank = G.GuideBank(guide, [g for g, _ in online.pairs], x_train, mode=mode)
    banked = G.GuidanceLoss(target, guide, x_train[:2], bank=bank)
    idx = torch.tensor([3, 7, 8, 20, 21, 30, 33, 40, 41, 47, 0, 5])
    batch = G.IndexedInputs(x_train)[idx]
    target.eval()  # same values in both passes (no dropout); the loss still records hooks
    results = []
    for fn, xb in ((online, x_train[idx]), (banked, batch)):
        target.train()
        for m in target.modules():
            if isinstance(m, (nn.Dropout, nn.BatchNorm1d)):
                m.eval()
        loss, _ = fn(target, xb, y[idx])
        results.append((loss, torch.autograd.grad(loss, list(target.parameters()))))
    (l1, g1), (l2, g2) = results
    assert torch.allclose(l1, l2, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g1, g2))


def test_gram_bank_is_for_linear_cka_only():
    x = x8(8)
    target, guide = tiny_fcn(), tiny_resnet()
    bank = G.GuideBank(guide, G.guidance_layers(guide, x[:2]), x, mode="gram")
    with pytest.raises(ValueError, match="linear CKA only"):
        G.GuidanceLoss(target, guide, x[:2], distance="rsa", bank=bank)


# ----------------------------------------------------------------------------- the frozen guide


def blobs_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of 3x8x8 images: a class-specific pattern plus noise."""
    patterns = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(99))
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    return patterns[y] + 1.5 * torch.randn(n, 3, 8, 8, generator=gen), y


def test_frozen_guide_stays_bit_identical_through_training_and_the_schedule():
    train, test = blobs_images(192, 0), blobs_images(96, 1)
    gen = seed_everything(0)
    target = deep_fcn(in_features=192, width=32, depth=4, first_width=None, num_classes=4)
    guide = tiny_resnet()
    guide.fc = nn.Linear(guide.fc.in_features, 4)
    guide.train()  # left in train mode by mistake: guidance must still run it in eval mode
    before = copy.deepcopy(guide.state_dict())
    guide_calls = []
    guide.register_forward_hook(lambda *a: guide_calls.append(1))
    loss_fn = G.GuidanceLoss(target, guide, train[0][:2], guide_steps=5)
    assert not guide.training and not any(p.requires_grad for p in guide.parameters())
    guide_calls.clear()
    fit(target, train, test, FitSettings(epochs=2, batch_size=32), generator=gen, device=CPU, loss_fn=loss_fn,
        progress=False)
    after = guide.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm buffers
    assert all(p.grad is None for p in guide.parameters())
    assert loss_fn.step == 12 and len(loss_fn.log) == 5 and len(guide_calls) == 5  # guided for 5 steps only
    assert [e["step"] for e in loss_fn.log] == [0, 1, 2, 3, 4]


def test_guide_sharing_parameters_with_the_target_is_refused():
    target = tiny_fcn()
    with pytest.raises(ValueError, match="share parameters"):
        G.GuidanceLoss(target, target, x8(2))


def test_a_tiny_guided_run_learns_and_aligns():
    train, test = blobs_images(256, 0), blobs_images(128, 1)
    guide = tiny_resnet(seed=3)
    guide.fc = nn.Linear(guide.fc.in_features, 4)
    fit(guide, train, test, FitSettings(epochs=3, batch_size=32, lr=3e-3), generator=seed_everything(3),
        device=CPU, progress=False)  # a trained guide
    gen = seed_everything(0)
    target = deep_fcn(in_features=192, width=32, depth=6, first_width=None, num_classes=4, dropout=0.0)
    pairs = G.GuidanceLoss(target, guide, train[0][:2]).pairs
    bank = G.GuideBank(guide, [g for g, _ in pairs], train[0])
    loss_fn = G.GuidanceLoss(target, guide, train[0][:2], alpha=1.0, bank=bank)
    probe = G.SimilarityProbe(guide, loss_fn.pairs, test[0][:64])
    start = probe.measure(target)
    history = fit(target, (G.IndexedInputs(train[0]), train[1]), test, FitSettings(epochs=4, batch_size=32, lr=3e-3),
                  generator=gen, device=CPU, loss_fn=loss_fn, progress=False)
    end = probe.measure(target)
    assert history[-1]["test_acc"] > 0.8
    assert sum(end) / len(end) > sum(start) / len(start)
    means = loss_fn.epoch_means(8)
    assert [m["epoch"] for m in means] == [1, 2, 3, 4] and means[-1]["guidance"] < means[0]["guidance"]


def test_recorder_hooks_are_removed_after_each_step():
    target, guide = tiny_fcn(), tiny_resnet()
    loss_fn = G.GuidanceLoss(target, guide, x8(2))
    target.train()
    loss_fn(target, x8(8), torch.zeros(8, dtype=torch.long))
    assert all(not m._forward_hooks for m in target.modules())
    assert all(not m._forward_hooks for m in guide.modules())


def test_symmetric_gram_backward_is_autograds_in_one_product():
    x = torch.randn(12, 30, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(G.SymmetricGram.apply, (x,))
    w = torch.randn(12, 12, dtype=torch.float64)
    (g_sym,) = torch.autograd.grad((G.SymmetricGram.apply(x) * w).sum(), x)
    (g_ref,) = torch.autograd.grad(((x @ x.T) * w).sum(), x)
    torch.testing.assert_close(g_sym, g_ref)


def test_the_bf16_gram_path_matches_float32_cka_and_its_gradient():
    """Chapter 05's wide conv layers take linear CKA through bf16 Gram matrices: the value within 1e-3 of
    float32, the gradient pointing the same way, and only where asked and native."""
    from untrainable.similarity import linear_cka

    torch.manual_seed(0)
    x = torch.relu(torch.randn(64, 2048) + 0.5).requires_grad_()
    y = torch.relu(x.detach()[:, torch.randperm(2048)] + 0.3 * torch.randn(64, 2048))
    exact = linear_cka(x, y)
    (g_exact,) = torch.autograd.grad(exact, x)
    fast = G.linear_cka_bf16_gram(x, y)
    (g_fast,) = torch.autograd.grad(fast, x)
    assert float(fast.detach()) == pytest.approx(float(exact.detach()), abs=1e-3)
    assert float(torch.nn.functional.cosine_similarity(g_fast.flatten(), g_exact.flatten(), dim=0)) > 0.99
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    guide = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    loss = G.GuidanceLoss(net, guide, torch.randn(2, 4), gram_precision="bf16")
    assert not loss._bf16_gram(torch.randn(16, 8))  # more examples than features: the float32 route
    with pytest.raises(ValueError, match="gram_precision"):
        G.GuidanceLoss(net, guide, torch.randn(2, 4), gram_precision="fp16")


# ----------------------------------------------------------------------------- one constant layer (issue #31)


def _with_constant_layer(net: nn.Module, name: str) -> nn.Module:
    """``net`` with layer ``name`` (a Linear) made constant over every batch: zero weights, its bias alone."""
    layer = dict(net.named_modules())[name]
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.fill_(0.5)
    return net


def _mlp_guide(seed: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 10))


def _one_step(loss_fn: G.GuidanceLoss, target: nn.Module, xb, yb) -> list[torch.Tensor]:
    """One Adam step on the guidance loss; the gradients it took."""
    opt = torch.optim.Adam(target.parameters(), lr=1e-3)
    target.train()
    opt.zero_grad()
    with pytest.warns(RuntimeWarning, match="counted as unrelated"):
        loss, _ = loss_fn(target, xb, yb)
    loss.backward()
    grads = [p.grad.clone() for p in target.parameters()]
    opt.step()
    assert all(torch.isfinite(p).all() for p in target.parameters())
    return grads


def test_a_constant_target_layer_counts_its_pair_as_unrelated_and_the_step_trains():
    x, y = x8(16), torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
    target, guide = tiny_fcn(depth=3), tiny_resnet()
    loss_fn = G.GuidanceLoss(target, guide, x[:2])
    last = len(loss_fn.pairs) - 1
    _with_constant_layer(target, loss_fn.pairs[last][1])  # the deepest mapped layer (what follows it stays unmapped)
    grads = _one_step(loss_fn, target, x, y)
    assert all(torch.isfinite(g).all() for g in grads)
    log = loss_fn.log[-1]
    assert log["constant_pairs"] == [last]
    assert log["terms"][last] == 1.0 and all(0 <= t < 1 for t in log["terms"][:last])
    assert grads[0].abs().sum() > 0  # the other pairs and the task still train the first layer


@pytest.mark.parametrize("bank_mode", [None, "gram", "features"])
def test_a_constant_guide_layer_counts_its_pair_as_unrelated_and_the_step_trains(bank_mode):
    x, y = x8(16), torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
    target, guide = tiny_fcn(depth=3), _with_constant_layer(_mlp_guide(), "3")
    plain = G.GuidanceLoss(target, guide, x[:2])
    assert plain.pairs[1][0] == "3"
    bank = None if bank_mode is None else G.GuideBank(guide, [g for g, _ in plain.pairs], x, mode=bank_mode)
    loss_fn = G.GuidanceLoss(target, guide, x[:2], bank=bank)
    xb = G.IndexedInputs(x)[torch.arange(16)] if bank is not None else x
    grads = _one_step(loss_fn, target, xb, y)
    assert all(torch.isfinite(g).all() for g in grads)
    assert loss_fn.log[-1]["constant_pairs"] == [1] and loss_fn.log[-1]["terms"][1] == 1.0


def test_the_bf16_gram_path_raises_for_a_constant_side_as_the_float32_forms_do():
    from untrainable.similarity import ConstantRepresentationError

    x = torch.randn(12, 40).relu()
    with pytest.raises(ConstantRepresentationError, match="target's activations"):
        G.linear_cka_bf16_gram(torch.full((12, 40), 3.0), x)
    with pytest.raises(ConstantRepresentationError, match="guide's activations"):
        G.linear_cka_bf16_gram(x, torch.full((12, 40), 3.0) + 1e-7 * torch.randn(12, 40))


def test_a_probe_of_a_48_layer_batchnorm_fcn_at_initialisation_reports_its_constant_pairs():
    """In eval mode at initialisation (running statistics still the initial ones) the deep layers of a
    48-layer BatchNorm FCN are constant over the probe set: their pairs are None, with a reason, and the
    probe, a diagnostic, never stops the run."""
    torch.manual_seed(0)
    target, guide = deep_fcn(3 * 8 * 8, 32, 48, None), G.freeze(tiny_resnet())
    x = x8(64)
    pairs = G.resolve_mapping(G.guidance_layers(guide, x[:2]), G.guidance_layers(target, x[:2]))
    probe = G.SimilarityProbe(guide, pairs, x)
    values = probe.measure(target)
    undefined = [i for i, v in enumerate(values) if v is None]
    assert undefined and undefined[-1] == len(pairs) - 1 and values[0] is not None  # the deep end is constant
    assert sorted(probe.undefined) == undefined
    assert all(f"({pairs[i][0]} -> {pairs[i][1]})" in probe.undefined[i] and "constant" in probe.undefined[i]
               for i in undefined)
    defined = [v for v in values if v is not None]
    assert all(0 <= v <= 1 for v in defined)
    assert G.mean_defined(values) == pytest.approx(sum(defined) / len(defined))
    assert G.mean_defined([None, None]) is None


def test_a_probe_against_a_constant_guide_layer_reports_that_pair_as_undefined():
    x = x8(32)
    target, guide = tiny_fcn(depth=3), G.freeze(_with_constant_layer(_mlp_guide(), "3"))
    pairs = [("1", "features.1"), ("3", "features.9")]
    probe = G.SimilarityProbe(guide, pairs, x)
    values = probe.measure(target)
    assert values[0] is not None and values[1] is None
    assert "guide layer '3'" in probe.undefined[1]
