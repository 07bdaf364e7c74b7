"""Record what chosen layers of a network compute, with forward hooks.

Two levels:

* :class:`LayerRecorder`, a context manager that records the outputs of chosen modules during an
  ordinary forward pass. It does not touch gradients: inside ``torch.no_grad()`` it records plain
  tensors for analysis; outside it the recorded tensors stay in the autograd graph, so a loss on
  them (guidance's CKA loss) trains the network.
* :func:`record_layers`, for analysis: runs a model over inputs in batches, in eval mode and
  under ``no_grad``, and returns every chosen layer's activations for all inputs.

Layers are named as in ``model.named_modules()`` (``"features.0"``, ``"layer1.1"``);
:func:`layer_names` lists them. Asking for a name the model does not have is an error, and so is
a chosen layer that never runs: neither returns a silently empty result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType

import torch
from torch import nn

from untrainable.runtime import eval_mode

__all__ = ["LayerRecorder", "record_layers", "layer_names", "resolve_layers", "UnknownLayerError"]


class UnknownLayerError(KeyError):
    """A layer name that is not a module of the model; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


def layer_names(model: nn.Module, leaves_only: bool = True) -> list[str]:
    """Names of the model's modules in definition order (only those without children by default)."""
    return [name for name, m in model.named_modules()
            if name and (not leaves_only or next(m.children(), None) is None)]


def resolve_layers(model: nn.Module, layers: Iterable[str] | None) -> dict[str, nn.Module]:
    """Map layer names to modules; ``None`` means every leaf module. Unknown names raise."""
    modules = dict(model.named_modules())
    if layers is None:
        return {name: modules[name] for name in layer_names(model)}
    layers = list(layers)
    if not layers:
        raise ValueError("no layers chosen: pass layer names, or None for every leaf module")
    unknown = [name for name in layers if name not in modules or name == ""]
    if unknown:
        valid = layer_names(model, leaves_only=False)
        shown = ", ".join(valid[:40]) + (", ..." if len(valid) > 40 else "")
        raise UnknownLayerError(
            f"{type(model).__name__} has no module named {', '.join(map(repr, unknown))}; its modules are: {shown}"
        )
    if len(set(layers)) != len(layers):
        raise ValueError(f"a layer is named twice in {layers}")
    return {name: modules[name] for name in layers}


def _first_tensor(output: object, name: str) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]  # e.g. recurrent layers return (output, state)
    raise TypeError(f"layer {name!r} returned {type(output).__name__}, not a tensor: choose another layer")


class LayerRecorder:
    """Records the outputs of chosen modules while the model runs.

    ``outputs`` maps each layer name to its most recent output, in the order the layers first
    ran in. Outputs are cloned, so an in-place operation later in the forward pass (``ReLU
    (inplace=True)`` after a convolution) cannot change what was recorded. With ``detach=True``
    the recorded tensors are cut from the autograd graph; with ``detach=False`` (the default) they
    are part of it whenever gradients are enabled::

        with LayerRecorder(model, ["features.1", "features.4"]) as rec:
            logits = model(x)              # an ordinary forward: gradients flow as usual
        acts = rec.outputs                 # {"features.1": tensor, "features.4": tensor}

    The hooks are removed on leaving the ``with`` block (or by :meth:`remove`).
    """

    def __init__(self, model: nn.Module, layers: Iterable[str] | None = None, *, detach: bool = False,
                 clone: bool = True) -> None:
        self.model = model
        self.modules = resolve_layers(model, layers)
        self.detach = detach
        self.clone = clone
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    @property
    def names(self) -> list[str]:
        """The chosen layer names, in the order they were asked for."""
        return list(self.modules)

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            out = _first_tensor(output, name)
            if self.detach:
                out = out.detach()
            if self.clone:
                out = out.clone()
            self.outputs[name] = out

        return hook

    def attach(self) -> "LayerRecorder":
        """Register the hooks (done by ``with``)."""
        if self._handles:
            raise RuntimeError("this recorder is already attached")
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.modules.items()]
        return self

    def remove(self) -> None:
        """Remove the hooks (done on leaving ``with``); recorded outputs are kept."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def clear(self) -> None:
        """Forget the recorded outputs (before the next forward pass)."""
        self.outputs = {}

    def missing(self) -> list[str]:
        """Chosen layers that have not run since the last :meth:`clear`."""
        return [name for name in self.modules if name not in self.outputs]

    def check_complete(self) -> dict[str, torch.Tensor]:
        """The outputs, or an error naming every chosen layer that did not run."""
        if missing := self.missing():
            raise RuntimeError(
                f"layers {missing} did not run in the forward pass of {type(self.model).__name__}: "
                "they are defined but not used by forward()"
            )
        return self.outputs

    def __enter__(self) -> "LayerRecorder":
        return self.attach()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()


@torch.no_grad()
def record_layers(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: Sequence[str] | None = None,
    *,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    flatten: bool = False,
    out_device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Activations of ``layers`` for all ``inputs``, in forward order, keyed by module name.

    Runs in eval mode (restored afterwards) and under ``no_grad``, ``batch_size`` inputs at a time
    on ``device`` (default: the model's), and concatenates each layer's outputs on
    ``out_device``. ``flatten=True`` returns ``(n, d)`` matrices. ``layers=None`` records every
    leaf module. Unknown names raise :class:`UnknownLayerError`; chosen layers that never run
    raise ``RuntimeError``.
    """
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    chunks: dict[str, list[torch.Tensor]] = {}
    with eval_mode(model), LayerRecorder(model, layers, detach=True) as rec:
        for start in range(0, len(inputs), batch_size):
            rec.clear()
            model(inputs[start : start + batch_size].to(device))
            for name, out in rec.check_complete().items():
                out = out.reshape(out.shape[0], -1) if flatten else out
                chunks.setdefault(name, []).append(out.to(out_device))
    if not chunks:
        raise ValueError("no inputs to record")
    return {name: torch.cat(parts) for name, parts in chunks.items()}
