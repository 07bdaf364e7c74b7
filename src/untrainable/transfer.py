"""One API for handing a student what a frozen teacher knows: ``student + teacher + methods -> loss``.

The methods, each a term of the loss with its weight (:class:`Method`), summed:

* ``labels``: the task's cross-entropy with the true labels;
* ``kd`` (Hinton et al., 2015): ``T² · KL(softmax(z/T) || softmax(g/T))`` of the teacher's logits
  ``z`` and the student's ``g`` (:func:`untrainable.mimic.distillation_loss`);
* ``logits`` (Ba & Caruana, 2014): ``1/(2N) Σ ||g − z||²``, regression on the teacher's logits
  (:func:`untrainable.mimic.logit_regression_loss`);
* ``fitnets`` (Romero et al., 2015): ``½ · mean (r(v) − u)²`` between the teacher's hint layer ``u``
  and a learned regressor ``r`` of the student's guided layer ``v`` (a 1 × 1 convolution between
  conv maps, else a linear map of the flattened features; the teacher's maps are average-pooled to
  at most 4 × 4 when the student's layer is not convolutional);
* ``spkd`` (Tung & Mori, 2019), similarity-preserving distillation: over the mapped layer pairs,
  ``Σ 1/b² · ||norm(A_t A_tᵀ) − norm(A_s A_sᵀ)||²_F`` with each row of a batch's similarity matrix
  L2-normalised;
* ``guidance`` (Subramaniam et al., 2024): ``Σ distance(student layer, teacher layer)`` over the
  evenly mapped pairs, any distance of :data:`untrainable.guidance.GUIDANCE_DISTANCES`, computed by
  :class:`~untrainable.guidance.GuidanceLoss` itself.

The teacher is frozen and run once per step under ``no_grad``, recording what the methods need;
or, where the student's inputs are the same every epoch (no augmentation), looked up in a
:class:`TeacherBank` of what it computes on the training set, built once (:meth:`TransferLoss.bank_teacher`):
the student then pays for no teacher pass at all. A FitNets regressor has parameters: :func:`with_regressors` puts them beside the student in one
module, so :func:`untrainable.train.fit` trains and checkpoints them with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from untrainable import distributed as D
from untrainable import guidance as G
from untrainable import mimic
from untrainable.recording import LayerRecorder, record_layers

__all__ = ["METHODS", "Method", "StudentWithRegressors", "with_regressors", "spkd_loss", "fitnets_loss",
           "TeacherBank", "TransferLoss"]

METHODS = ("labels", "kd", "logits", "fitnets", "spkd", "guidance")


@dataclass(frozen=True)
class Method:
    """One term of a transfer loss: the method, its weight, and its own setting."""

    name: str  # one of METHODS
    weight: float = 1.0
    temperature: float = 4.0  # kd
    distance: str = "linear_cka"  # guidance

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ValueError(f"unknown transfer method {self.name!r}: choose from {', '.join(METHODS)}")
        if self.name == "kd" and self.temperature <= 0:
            raise ValueError(f"kd needs a positive temperature, got {self.temperature}")


def spkd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Tung & Mori's similarity-preserving loss of one layer pair: ``1/b² ||norm(Gt) − norm(Gs)||²_F``,
    ``G = A Aᵀ`` over the batch's flattened activations, each row L2-normalised."""
    b = student.shape[0]
    gs = F.normalize(student.reshape(b, -1).float() @ student.reshape(b, -1).float().T, dim=1)
    gt = F.normalize(teacher.reshape(b, -1).float() @ teacher.reshape(b, -1).float().T, dim=1)
    return (gt - gs).pow(2).sum() / (b * b)


def _hint_shape(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The teacher's hint as the regressor's output must look: conv maps pooled to the student's
    spatial size (conv student) or to at most 4 × 4 and flattened (flat student)."""
    if teacher.dim() == 4 and student.dim() == 4:
        return F.adaptive_avg_pool2d(teacher, student.shape[-2:])
    if teacher.dim() == 4:
        teacher = F.adaptive_avg_pool2d(teacher, (min(4, teacher.shape[-2]), min(4, teacher.shape[-1])))
    return teacher.flatten(1)


def _regressor(student: torch.Tensor, hint: torch.Tensor) -> nn.Module:
    if student.dim() == 4 and hint.dim() == 4:
        return nn.Conv2d(student.shape[1], hint.shape[1], kernel_size=1)
    return nn.Sequential(nn.Flatten(), nn.Linear(student[0].numel(), hint[0].numel()))


def fitnets_loss(regressed: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
    """FitNets' hint loss, ``½ · mean (r(v) − u)²`` (the mean over every element keeps it on one scale
    whatever the layer's size)."""
    return 0.5 * (regressed.float() - hint.float()).pow(2).mean()


class StudentWithRegressors(nn.Module):
    """The student with the regressors of its transfer loss beside it: forward is the student's."""

    def __init__(self, student: nn.Module, regressors: nn.ModuleDict) -> None:
        super().__init__()
        self.student, self.regressors = student, regressors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


def with_regressors(loss: TransferLoss) -> nn.Module:
    """The module to train with ``loss``: the student itself, or the student and its FitNets regressor."""
    return StudentWithRegressors(loss.student, loss.regressors) if len(loss.regressors) else loss.student


class TeacherBank:
    """The frozen teacher's side of a transfer loss on the whole training set, computed once: its logits,
    each layer the methods compare (flattened, float32: :class:`untrainable.guidance.GuideBank`) and
    the FitNets hint in the shape its regressor predicts. A batch of :class:`~untrainable.guidance.IndexedInputs`
    looks its rows up; the teacher then never runs during training, which on a CPU is most of a step
    for a small student (chapter 08: a ResNet-18 teacher and a Deep FCN student).

    The teacher runs in float32 here (an online teacher runs in the step's precision). Memory:
    ``N · (Σ layer sizes + hint + classes) · 4`` bytes.
    """

    def __init__(self, loss: "TransferLoss", x_train: torch.Tensor, batch_size: int = 256) -> None:
        teacher_layers = loss._layers(fitnets=False)[0]
        self.features = (G.GuideBank(loss.teacher, teacher_layers, x_train, "features", batch_size=batch_size)
                         if teacher_layers else None)
        with torch.no_grad():
            outputs = [loss.teacher(x_train[i:i + batch_size]).float() for i in range(0, len(x_train), batch_size)]
        self.logits = torch.cat(outputs)
        self.hint = None
        if loss.needs_hint:
            g, t = loss.hint
            acts = record_layers(loss.teacher, x_train, [g], batch_size=batch_size)[g]
            student = loss._record(loss.student, [t], x_train[:2], detach=True)[0][t]
            self.hint = _hint_shape(student, acts)

    def lookup(self, layers: Sequence[str], index: torch.Tensor, device: torch.device | str
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """The batch's teacher layers (flattened), logits and hint."""
        acts = {g: self.features.lookup(g, index, device) for g in layers} if layers else {}
        hint = None if self.hint is None else self.hint[index].to(device)
        return acts, self.logits[index].to(device), hint


class TransferLoss:
    """``Σ weight · method loss``, a ``loss_fn`` for :func:`~untrainable.train.fit`: ``loss, logits = tl(model, x, y)``.

    ``model`` is the student or :func:`with_regressors`'s module. Layer pairs (``spkd``, ``guidance``)
    are the even mapping of :func:`untrainable.guidance.guidance_layers` on ``example_input``; the
    FitNets hint is the middle pair. ``log`` keeps each step's terms.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, methods: Sequence[Method],
                 example_input: torch.Tensor) -> None:
        if not methods:
            raise ValueError("a transfer loss needs at least one method, e.g. Method('labels')")
        names = [m.name for m in methods]
        if len(set(names)) != len(names):
            raise ValueError(f"each method may appear once, got {names}")
        self.student, self.teacher, self.methods = student, G.freeze(teacher), list(methods)
        distance = next((m.distance for m in methods if m.name == "guidance"), "linear_cka")
        self.guidance = G.GuidanceLoss(student, self.teacher, example_input, distance=distance)
        self.pairs = self.guidance.pairs
        self.hint = self.pairs[len(self.pairs) // 2]
        self.regressors = nn.ModuleDict()
        if "fitnets" in names:
            with torch.no_grad():
                acts = self._record(self.student, [self.hint[1]], example_input, detach=True)[0]
                hint = _hint_shape(acts[self.hint[1]], self._record(self.teacher, [self.hint[0]], example_input,
                                                                    detach=True)[0][self.hint[0]])
            self.regressors["fitnets"] = _regressor(acts[self.hint[1]], hint)
        self.log: list[dict[str, float]] = []
        self.bank: TeacherBank | None = None

    @property
    def needs_teacher(self) -> bool:
        """Whether any method reads the teacher (the labels alone do not)."""
        return any(m.name != "labels" for m in self.methods)

    @property
    def needs_hint(self) -> bool:
        return any(m.name == "fitnets" for m in self.methods)

    def bank_teacher(self, x_train: torch.Tensor) -> None:
        """Compute the teacher's side once on ``x_train`` (:class:`TeacherBank`); batches of
        ``IndexedInputs(x_train)`` then look it up instead of running the teacher."""
        self.bank = TeacherBank(self, x_train) if self.needs_teacher else None

    @staticmethod
    def _record(model: nn.Module, names: list[str], x: torch.Tensor, detach: bool = False
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if not names:  # a method on outputs only: nothing to record
            return {}, model(x)
        with LayerRecorder(model, list(dict.fromkeys(names)), detach=detach) as rec:
            logits = model(x)
        return rec.check_complete(), logits

    def _layers(self, fitnets: bool = True) -> tuple[list[str], list[str]]:
        """(teacher layers, student layers) the methods need recorded (``fitnets=False``: without the hint)."""
        names = {m.name for m in self.methods}
        pairs = self.pairs if names & {"spkd", "guidance"} else []
        pairs = pairs + ([self.hint] if "fitnets" in names and fitnets else [])
        return [g for g, _ in pairs], [t for _, t in pairs]

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        student = model.student if isinstance(model, StudentWithRegressors) else model
        if student is not self.student:
            raise ValueError("this TransferLoss was built for another student")
        index = x.index if isinstance(x, G.IndexedBatch) else None
        x = x.x if index is not None else x
        if not model.training:
            logits = model(x)
            return F.cross_entropy(logits, y), logits
        teacher_layers, student_layers = self._layers()
        s_acts, logits = self._record(student, student_layers, x)
        t_acts, t_logits, hint = self._teacher_side(x, index, teacher_layers)
        terms = {m.name: self.term(m, s_acts, t_acts, logits, t_logits, y, hint) for m in self.methods}
        self.log.append({k: float(v.detach()) for k, v in terms.items()})
        total = sum(m.weight * terms[m.name] for m in self.methods)
        return total, logits

    def _teacher_side(self, x: torch.Tensor, index: torch.Tensor | None, layers: list[str]
                      ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor | None]:
        """The teacher's layers, logits and FitNets hint on this batch: looked up in the bank when the
        batch says which examples it holds, else computed (nothing when no method reads the teacher)."""
        if not self.needs_teacher:
            return {}, None, None
        if self.bank is not None and index is not None:
            return self.bank.lookup(self._layers(fitnets=False)[0], index, x.device)  # the hint comes apart
        self.teacher.eval()
        with torch.no_grad():
            t_acts, t_logits = self._record(self.teacher, layers, x, detach=True)
        return t_acts, t_logits, None

    def term(self, m: Method, s_acts: dict[str, torch.Tensor], t_acts: dict[str, torch.Tensor],
             logits: torch.Tensor, t_logits: torch.Tensor, y: torch.Tensor,
             hint: torch.Tensor | None = None) -> torch.Tensor:
        """Method ``m``'s loss on one batch, before its weight: from the student's and the teacher's
        recorded layers and logits. Public because chapter 08 shows it: every method's loss in one place."""
        if m.name == "labels":
            return F.cross_entropy(logits.float(), y)
        if m.name == "kd":
            return mimic.distillation_loss(logits, t_logits, m.temperature)
        if m.name == "logits":
            return mimic.logit_regression_loss(logits, t_logits)
        # the batch-level terms see the global batch when several processes train (untrainable.distributed)
        if m.name == "spkd":
            return torch.stack([spkd_loss(D.gather_rows(s_acts[t]), D.gather_rows(t_acts[g]))
                                for g, t in self.pairs]).sum()
        if m.name == "guidance":
            return self.guidance.pair_terms([D.gather_rows(s_acts[t]) for _, t in self.pairs],
                                            [D.gather_rows(t_acts[g]) for g, _ in self.pairs]).sum()
        g, t = self.hint
        v = s_acts[t]
        return fitnets_loss(self.regressors["fitnets"](v.float()), _hint_shape(v, t_acts[g]) if hint is None else hint)
