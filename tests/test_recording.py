"""Forward hooks: what is recorded, in which order, and the errors for wrong layer names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from untrainable.models import FCN, SmallCNN
from untrainable.recording import LayerRecorder, UnknownLayerError, layer_names, record_layers


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(channels=(4, 8), hidden=16, image_size=8)


def test_record_layers_in_forward_order_with_shapes():
    model = small_cnn()
    x = torch.randn(10, 3, 8, 8)
    acts = record_layers(model, x, ["classifier.2", "features.0", "features.3"], batch_size=4)
    assert list(acts) == ["features.0", "features.3", "classifier.2"]  # forward order, not the order asked
    assert acts["features.0"].shape == (10, 4, 8, 8)
    assert acts["features.3"].shape == (10, 8, 4, 4)
    with torch.no_grad():
        assert torch.allclose(acts["classifier.2"], model(x), atol=1e-6)  # batching does not change values


def test_inplace_relu_does_not_overwrite_the_conv_output():
    model = small_cnn()
    x = torch.randn(6, 3, 8, 8)
    acts = record_layers(model, x, ["features.0", "features.1"])
    assert (acts["features.0"] < 0).any()  # pre-activation kept its negative values
    assert torch.equal(acts["features.1"], acts["features.0"].clamp_min(0))


def test_record_layers_flatten_and_no_grad_and_mode_restored():
    model = FCN(in_features=12, width=5, depth=2, batch_norm=True)
    model.train()
    x = torch.randn(7, 12, requires_grad=True)
    acts = record_layers(model, x, ["features.3", "classifier"], flatten=True)
    assert acts["features.3"].shape == (7, 5)
    assert not acts["features.3"].requires_grad
    assert model.training  # eval mode only while recording


def test_unknown_layer_is_an_error_that_lists_valid_names():
    model = small_cnn()
    with pytest.raises(UnknownLayerError, match="no module named 'features.99'.*features.0"):
        record_layers(model, torch.randn(2, 3, 8, 8), ["features.0", "features.99"])
    with pytest.raises(ValueError, match="no layers chosen"):
        LayerRecorder(model, [])


def test_layer_that_never_runs_is_an_error():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(RuntimeError, match="did not run"):
        record_layers(Unused(), torch.randn(4, 3), ["used", "unused"])


def test_recorder_keeps_the_graph_for_a_loss():
    model = small_cnn()
    x = torch.randn(5, 3, 8, 8)
    with LayerRecorder(model, ["features.1"]) as rec:
        model(x)
    act = rec.outputs["features.1"]
    assert act.requires_grad
    act.pow(2).mean().backward()
    assert model.features[0].weight.grad is not None
    # hooks are gone after the block
    rec.clear()
    model(x)
    assert rec.outputs == {}


def test_recorder_under_no_grad_and_detach():
    model = small_cnn()
    with torch.no_grad(), LayerRecorder(model, ["features.0"]) as rec:
        model(torch.randn(2, 3, 8, 8))
    assert not rec.outputs["features.0"].requires_grad
    with LayerRecorder(model, ["features.0"], detach=True) as rec:
        model(torch.randn(2, 3, 8, 8))
    assert not rec.outputs["features.0"].requires_grad


def test_layer_names_lists_leaves_in_definition_order():
    names = layer_names(small_cnn())
    assert names[:3] == ["features.0", "features.1", "features.2"]
    assert "features" not in names and "classifier.2" in names
