"""Mimic learning: the losses against hand-computed values, the KD limit, the bottleneck, the transfer set."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from untrainable import mimic


def test_logit_regression_matches_a_hand_computed_value():
    g = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    z = torch.tensor([[1.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    # example 1: (0 + 4 + 0) / 2 = 2; example 2: (1 + 1 + 1) / 2 = 1.5; mean 1.75
    assert mimic.logit_regression_loss(g, z).item() == pytest.approx(1.75)


def test_logit_regression_sees_what_softmax_hides():
    z = torch.tensor([[2.0, 1.0, 0.0]])
    shifted = z + 5.0  # same probabilities, different logits
    assert mimic.soft_cross_entropy(z, torch.softmax(shifted, 1)) == pytest.approx(
        mimic.soft_cross_entropy(z, torch.softmax(z, 1)).item())
    assert mimic.logit_regression_loss(z, shifted).item() == pytest.approx(0.5 * 3 * 25)


def test_soft_cross_entropy_and_kd_hand_values():
    g = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (1/4, 3/4)
    p = torch.tensor([[0.5, 0.5]])
    expected_ce = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert mimic.soft_cross_entropy(g, p).item() == pytest.approx(expected_ce, rel=1e-6)
    z = torch.zeros(1, 2)  # teacher probabilities (1/2, 1/2) at any temperature
    # KL(p || q) at T = 1 is CE minus the teacher's entropy log 2
    assert mimic.distillation_loss(g, z, 1.0).item() == pytest.approx(expected_ce - math.log(2), rel=1e-6)
    assert mimic.distillation_loss(z, z, 4.0).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_at_high_temperature_approaches_logit_matching():
    torch.manual_seed(0)
    c = 10
    g = torch.randn(8, c)
    z = torch.randn(8, c)
    g, z = g - g.mean(1, keepdim=True), z - z.mean(1, keepdim=True)  # zero-mean logits, as in Hinton et al.
    target = (g - z) / c / len(g)  # gradient of the logit-matching limit, batch mean
    errors = []
    for t in (2.0, 20.0, 200.0):
        gt = g.clone().requires_grad_(True)
        mimic.distillation_loss(gt, z, t).backward()
        errors.append((gt.grad - target).abs().max().item())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3 * target.abs().max().item() * 10


def test_bottleneck_factorisation_has_the_right_size_and_rank():
    s = mimic.ShallowStudent(hidden=300, bottleneck=20, conv_channels=8, pool=4)
    n = sum(p.numel() for p in s.parameters())
    front = 3 * 25 * 8 + 8
    features = 8 * 8 * 8
    assert n == front + features * 20 + (20 + 1) * 300 + (300 + 1) * 10 == mimic.student_params(300, 20, 8)
    w = s.input_weight()
    assert w.shape == (300, features) and torch.linalg.matrix_rank(w).item() == 20
    plain = mimic.ShallowStudent(hidden=300, conv_channels=8)
    assert torch.linalg.matrix_rank(plain.input_weight()).item() == min(300, features)
    # the bottleneck saves parameters exactly when k < (features * hidden) / (features + hidden)
    assert mimic.student_params(300, 20, 8) < mimic.student_params(300, None, 8)


def test_conv_free_student_and_deep_mlp_sizes():
    s = mimic.ShallowStudent(hidden=64, bottleneck=16)
    assert s(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in s.parameters()) == mimic.student_params(64, 16, 0)
    target = 500_000
    mlp = mimic.deep_mlp_of_width(mimic.deep_mlp_width(target, 3), depth=3)
    n = sum(p.numel() for p in mlp.parameters())
    assert 0.98 * target < n <= target
    assert n == mimic.deep_mlp_params(mimic.deep_mlp_width(target, 3), 3)


@pytest.mark.parametrize("profile", ["quick", "full", "paper"])
def test_deep_mlp_control_matches_the_conv_free_students_size(profile):
    from untrainable.experiments import mimic_students as M

    p = M.preset(profile)
    sweep = M.size_sweep(p)
    for h in p.widths:
        shallow = sum(q.numel() for q in M.build_student(sweep[f"mimic_noconv-h{h}"]).parameters())
        for kind in ("deep_mlp_labels", "deep_mlp_mimic"):
            deep = M.build_student(sweep[f"{kind}-h{h}"])
            n = sum(q.numel() for q in deep.parameters())
            assert 0.97 * shallow < n <= shallow, (kind, h, n, shallow)
            assert sum(isinstance(m, nn.Linear) for m in deep.modules()) == p.mlp_depth + 1


def test_sweep_selection_and_every_sweeps_seeds():
    from untrainable.experiments import mimic_students as M

    full = M.preset("full")
    assert full.seeds == (0, 1, 2)  # no verdict from one seed: every sweep runs the preset's seeds
    planned = {(r.name, r.seed) for r in M.planned_runs("full") if r.experiment == M.STUDENT_EXPERIMENT}
    assert planned == {(name, s) for students in M.configs("full").values() for name in students for s in full.seeds}
    with pytest.raises(ValueError, match="unknown mimic sweep"):
        M.run("quick", sweeps=("sizes",))


def test_presets_are_typed_and_an_unknown_override_names_itself_and_the_chapter():
    import re

    from untrainable.experiments import mimic_sweeps as MS
    from untrainable.profiles import PresetError, replace_preset

    assert set(MS.PRESETS) == {"quick", "full", "paper"} and all(isinstance(p, MS.Preset) for p in MS.PRESETS.values())
    with pytest.raises(PresetError, match=re.escape(f"{MS.CHAPTER}: unknown preset key(s) 'sweep_seeds'")):
        replace_preset(MS.CHAPTER, MS.PRESETS["full"], sweep_seeds={"size": (0,)})
    full = MS.preset("full")
    assert all(c.epochs == full.overfit_epochs for c in MS.overfit_pair(full).values())
    quick = MS.preset("quick")
    assert quick.overfit_epochs is None
    assert all(c.epochs == quick.student_epochs for c in MS.overfit_pair(quick).values())


def test_random_crop_flip_shifts_and_mirrors_per_image():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    same = mimic.random_crop_flip(x, gen, padding=0)
    for a, b in zip(same, x):
        assert torch.equal(a, b) or torch.equal(a, b.flip(-1))
    moved = mimic.random_crop_flip(x.repeat(50, 1, 1, 1), gen, padding=1)
    assert moved.shape == (100, 1, 4, 4)
    assert (moved == 0).any()  # some crops reach into the zero padding
    assert len({tuple(m.flatten().tolist()) for m in moved}) > 5  # crops differ between images


def test_transfer_set_averages_teachers_and_is_cached():
    torch.manual_seed(0)
    teachers = [nn.Sequential(nn.Flatten(), nn.Linear(12, 3)) for _ in range(2)]
    images = torch.randint(0, 256, (7, 3, 2, 2), dtype=torch.uint8)

    def normalize(u):
        return u.float() / 255

    x, z = mimic.transfer_set(teachers, images, normalize, views=2, seed=0, device=torch.device("cpu"), cache_key="t")
    assert x.shape == (21, 3, 2, 2) and z.shape == (21, 3)
    assert torch.equal(x[:7], images)
    expected = (teachers[0](normalize(x)) + teachers[1](normalize(x))) / 2
    assert torch.allclose(z, expected.detach(), atol=1e-6)
    with torch.no_grad():
        teachers[0][1].weight.add_(1.0)  # a cache hit ignores the (changed) teachers
    x2, z2 = mimic.transfer_set(teachers, images, normalize, views=2, seed=0, device=torch.device("cpu"), cache_key="t")
    assert torch.equal(z2, z) and torch.equal(x2, x)


def test_unknown_loss_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown mimic loss"):
        mimic.mimic_loss_fn("l1")(nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, 2))


def test_paper_profile_smoke_run_trains_teachers_and_every_sweep():
    from untrainable.data import load_cifar10
    from untrainable.experiments import mimic_students as M
    from untrainable.results import REQUIRED_KEYS

    records = M.run("paper", smoke=True)
    runs = M.records_by_sweep(records)
    assert list(runs) == ["teachers", "size", "quality", "loss", "bottleneck", "overfit"]
    teacher = runs["teachers"][0]
    assert teacher["config"]["channels"] == 128 and teacher["config"]["epochs"] == 1  # paper model, tiny slice
    for r in records:
        assert all(k in r for k in REQUIRED_KEYS) and r["profile"] == "paper"
    mimics = [r for r in runs["size"] if r["name"].startswith("mimic-")]
    assert all(0.0 <= r["metrics"]["teacher_test_acc"] <= 1.0 for r in mimics)
    assert M.run("paper", smoke=True) == records  # identical configs load their records
    # The ensemble line of the size figure comes from the records: the same number the weights give.
    p = M.preset("paper", smoke=True)
    teachers = M.resolve_teachers(M.TeacherSpec(p.teacher, p.ensemble), "paper")
    test = load_cifar10(train=False).subset(p.n_test, seed=0)
    direct = (mimic.ensemble_logits(teachers, test.normalized(), torch.device("cpu")).argmax(1) == test.labels)
    assert M.ensemble_accuracy(records, "paper", smoke=True) == pytest.approx(direct.float().mean().item())
    with pytest.raises(ValueError, match="ensemble"):
        M.ensemble_accuracy(runs["teachers"], "paper", smoke=True)
    with pytest.raises(ValueError, match="carries no sweep"):
        M.records_by_sweep([{k: v for k, v in teacher.items() if k != "sweep"}])


def test_planned_runs_hold_the_teachers_and_each_sweeps_seeds():
    from untrainable.experiments import mimic_students as M

    planned = M.planned_runs("full")
    p = M.preset("full")
    teachers = [r for r in planned if r.experiment == M.TEACHER_EXPERIMENT]
    assert sorted(r.seed for r in teachers) == sorted(p.ensemble)
    seeds = {}
    for r in planned:
        if r.experiment == M.STUDENT_EXPERIMENT:
            seeds.setdefault(r.name, set()).add(r.seed)
    assert seeds["quality-final-h256"] == seeds["bottleneck"] == seeds["mimic-h256"] == {0, 1, 2}
    assert {r.seed for r in M.planned_runs("full", seeds=(7,)) if r.experiment == M.STUDENT_EXPERIMENT} == {7}


def test_label_students_train_on_the_mimic_students_images_with_the_originals_labels(monkeypatch):
    """Mimicry and labels differ in their targets only: same transfer images, epochs and bottleneck."""
    from untrainable.experiments import mimic_students as M

    cfgs = M.configs("full")
    for sweep, pairs in (("size", [("labels-h1024", "mimic-h1024")]), ("loss", [("loss-labels", "loss-logits")]),
                         ("overfit", [("overfit-labels", "overfit-mimic")])):
        for labels, mimicking in pairs:
            a, b = cfgs[sweep][labels], cfgs[sweep][mimicking]
            assert (a.views, a.epochs, a.bottleneck, a.n_train) == (b.views, b.epochs, b.bottleneck, b.n_train)
    assert cfgs["overfit"]["overfit-labels"].epochs > M.preset("full").student_epochs
    seen = {}
    monkeypatch.setattr(M, "fit", lambda model, train, *a, **k: seen.setdefault("train", train) and [
        {"test_acc": 0.5, "train_acc": 0.5, "epoch_time_s": 0.0}])
    c = M.configs("quick", smoke=True)["size"]["labels-h64"]
    M.train_student(c, 0, torch.device("cpu"), None)
    x, y = seen["train"]
    n = M.preset("quick", smoke=True).n_train
    assert len(x) == len(y) == n * (c.views + 1) and torch.equal(y[:n], y[n:2 * n])
    assert torch.equal(mimic.transfer_images(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), 2, 0)[:2],
                       torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
