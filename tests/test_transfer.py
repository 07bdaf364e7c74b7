"""untrainable.transfer: each method's loss against a hand computation, their sum, the regressor, a tiny training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from untrainable import guidance as G
from untrainable import mimic
from untrainable import transfer as T
from untrainable.train import FitSettings, fit


def _net(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3))


def _conv(channels: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 3))


def test_spkd_and_fitnets_losses_match_a_hand_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 5)), rng.normal(size=(4, 7))

    def norm_gram(x):
        g = x @ x.T
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    expected = ((norm_gram(b) - norm_gram(a)) ** 2).sum() / 16
    assert float(T.spkd_loss(torch.tensor(a), torch.tensor(b))) == pytest.approx(expected, rel=1e-5)
    assert float(T.spkd_loss(torch.tensor(a), torch.tensor(a))) == pytest.approx(0.0, abs=1e-7)
    u, v = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 0.0], [3.0, 6.0]])
    assert float(T.fitnets_loss(u, v)) == pytest.approx(0.5 * (4 + 4) / 4)


def test_each_method_is_its_papers_formula_and_the_loss_is_their_weighted_sum():
    student, teacher = _net(8, 0), _net(16, 1)
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    methods = [T.Method("labels", 1.0), T.Method("kd", 0.5, temperature=2.0), T.Method("logits", 0.1),
               T.Method("spkd", 3.0), T.Method("guidance", 2.0)]
    loss = T.TransferLoss(student, teacher, methods, x[:4])
    student.train()
    total, logits = loss(student, x, y)
    with torch.no_grad():
        z = teacher(x)
    terms = loss.log[-1]
    assert terms["labels"] == pytest.approx(float(F.cross_entropy(logits.detach(), y)), rel=1e-6)
    assert terms["kd"] == pytest.approx(float(mimic.distillation_loss(logits.detach(), z, 2.0)), rel=1e-5)
    assert terms["logits"] == pytest.approx(float(mimic.logit_regression_loss(logits.detach(), z)), rel=1e-5)
    reference = G.GuidanceLoss(_net(8, 0), _net(16, 1), x[:4])  # the same nets, guided the library's way
    reference.target.train()
    task_and_guidance, _ = reference(reference.target, x, y)
    assert terms["guidance"] == pytest.approx(reference.log[-1]["guidance"], rel=1e-5)
    assert total.detach().item() == pytest.approx(sum(m.weight * terms[m.name] for m in methods), rel=1e-5)
    total.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_fitnets_trains_its_regressor_with_the_student():
    student, teacher = _conv(4, 0), _conv(8, 1)
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 3, (6,))
    loss = T.TransferLoss(student, teacher, [T.Method("fitnets")], x[:2])
    model = T.with_regressors(loss)
    assert isinstance(loss.regressors["fitnets"], nn.Conv2d) and loss.regressors["fitnets"].out_channels == 8
    assert set(dict(model.named_parameters())) > {f"student.{n}" for n, _ in student.named_parameters()}
    model.train()
    value, _ = loss(model, x, y)
    value.backward()
    assert loss.regressors["fitnets"].weight.grad is not None
    flat = T.TransferLoss(_net(8, 0), _net(16, 1), [T.Method("fitnets")], torch.randn(2, 6))
    assert isinstance(flat.regressors["fitnets"][1], nn.Linear)


def test_bad_methods_are_named():
    with pytest.raises(ValueError, match="unknown transfer method 'hint'"):
        T.Method("hint")
    with pytest.raises(ValueError, match="positive temperature"):
        T.Method("kd", temperature=0)
    with pytest.raises(ValueError, match="at least one method"):
        T.TransferLoss(_net(4, 0), _net(4, 1), [], torch.randn(2, 6))
    with pytest.raises(ValueError, match="once"):
        T.TransferLoss(_net(4, 0), _net(4, 1), [T.Method("kd"), T.Method("kd")], torch.randn(2, 6))
    loss = T.TransferLoss(_net(4, 0), _net(4, 1), [T.Method("labels")], torch.randn(2, 6))
    with pytest.raises(ValueError, match="another student"):
        loss(_net(4, 2).train(), torch.randn(2, 6), torch.zeros(2, dtype=torch.long))


def test_a_student_learns_its_teachers_function_from_the_logits_alone():
    """A tiny training that must work: regressing a fixed teacher's logits, without labels, the student
    comes to agree with the teacher's decisions on new inputs."""
    teacher, student = _net(32, 1), _net(32, 0)
    x = torch.randn(512, 6)
    with torch.no_grad():
        y = teacher(x).argmax(1)
    loss = T.TransferLoss(student, teacher, [T.Method("logits")], x[:4])
    x_new = torch.randn(256, 6)

    def agreement() -> float:
        with torch.no_grad():
            return float((student(x_new).argmax(1) == teacher(x_new).argmax(1)).float().mean())

    before = agreement()
    fit(T.with_regressors(loss), (x, y), (x_new, teacher(x_new).argmax(1).detach()),
        FitSettings(epochs=30, batch_size=64, lr=1e-2), generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"), loss_fn=loss, progress=False)
    assert agreement() > max(0.9, before + 0.2)


@pytest.mark.parametrize("student_kind", ["flat", "conv"])
def test_a_banked_teacher_gives_the_online_teachers_loss_and_never_runs(student_kind):
    """The bank holds what the teacher computes on the training set; a batch that says which examples
    it holds gets the same terms (every method at once, FitNets' hint included) with the teacher gone."""
    x, y = torch.randn(12, 3, 8, 8), torch.randint(0, 3, (12,))
    student = _conv(4, 0) if student_kind == "conv" else nn.Sequential(nn.Flatten(), _net_from(192, 8, 0))
    methods = [T.Method("labels"), T.Method("kd", 0.5), T.Method("logits", 0.1), T.Method("fitnets", 0.3),
               T.Method("spkd", 2.0), T.Method("guidance", 1.0)]
    loss = T.TransferLoss(student, _conv(6, 1), methods, x[:2])
    student.train()
    index = torch.tensor([3, 0, 7, 11, 5])
    online, _ = loss(student, x[index], y[index])
    online_terms = loss.log[-1]
    loss.bank_teacher(x)
    loss.teacher.forward = None  # a teacher pass would now fail
    banked, _ = loss(student, G.IndexedInputs(x)[index], y[index])
    for name, value in online_terms.items():
        assert loss.log[-1][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert banked.detach().item() == pytest.approx(online.detach().item(), rel=1e-4)


def test_the_labels_alone_never_run_the_teacher():
    student, teacher = _net(8, 0), _net(16, 1)
    loss = T.TransferLoss(student, teacher, [T.Method("labels")], torch.randn(2, 6))
    loss.bank_teacher(torch.randn(5, 6))
    teacher.forward = None
    student.train()
    total, _ = loss(student, torch.randn(4, 6), torch.randint(0, 3, (4,)))
    assert loss.bank is None and torch.isfinite(total)


def _net_from(inputs: int, width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3))
