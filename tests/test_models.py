"""The guidance chapters' models: shapes, sizes, the paper's layer counts, and the plain ConvNet."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from untrainable.models import (FCN, BasicBlock, ResNet, SmallCNN, count_parameters, deep_fcn, plain_convnet,
                                resnet18, resnet50, wide_fcn)


def test_resnet_sizes_match_the_standard_cifar_variants():
    assert count_parameters(resnet18()) == 11_173_962  # CIFAR ResNet-18, 10 classes
    assert count_parameters(resnet50()) == 23_520_842
    assert count_parameters(resnet18(width=16)) < count_parameters(resnet18()) / 10


@pytest.mark.parametrize("image_size", [32, 224])
def test_resnet_takes_cifar_and_imagenet_size_inputs(image_size):
    model = resnet18(width=8, num_classes=7, image_size=image_size)
    assert isinstance(model.maxpool, nn.MaxPool2d) == (image_size == 224)
    assert model(torch.randn(2, 3, image_size, image_size)).shape == (2, 7)


def test_plain_convnet_is_the_resnet_stack_without_any_skip():
    plain, res = plain_convnet(width=8), ResNet((3, 4, 6, 3), "bottleneck", 8)
    assert not any("downsample" in n for n, _ in plain.named_modules())
    assert all(not b.residual for b in plain.modules() if hasattr(b, "residual") and not isinstance(b, ResNet))
    convs = lambda m: sum(isinstance(c, nn.Conv2d) for c in m.modules())  # noqa: E731
    assert convs(plain) == convs(res) - 4 == 49  # ResNet-50's 53 convolutions less its 4 downsample branches
    x = torch.randn(2, 3, 32, 32)
    assert plain(x).shape == (2, 10)
    # a BasicBlock without its skip is exactly conv-bn-relu-conv-bn-relu
    torch.manual_seed(0)
    block = BasicBlock(4, 4, residual=False).eval()
    h = torch.randn(2, 4, 6, 6)
    ref = block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(h))))))
    assert torch.allclose(block(h), ref)


def test_deep_and_wide_fcn_follow_the_paper():
    deep = deep_fcn()
    linears = [m for m in deep.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 49 and linears[0].out_features == 2048 and linears[1].out_features == 1024
    kinds = [type(m) for m in deep.features[1:5]]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout] and deep.features[4].p == 0.1
    wide = wide_fcn()
    assert [m.out_features for m in wide.modules() if isinstance(m, nn.Linear)] == [8192, 8192, 8192, 10]
    assert not any(isinstance(m, nn.Dropout) for m in wide.modules())
    small = deep_fcn(width=32, depth=6, first_width=None)
    assert small(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_chapter_01_models_are_unchanged():
    assert count_parameters(FCN(width=192, depth=2)) == 3072 * 192 + 192 + 192 * 192 + 192 + 1930
    assert count_parameters(SmallCNN(channels=(32, 64, 128), hidden=256)) == 620_362


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="stem"):
        ResNet(stem="tiny")
    with pytest.raises(ValueError, match="block"):
        ResNet(block="wide")
    with pytest.raises(ValueError, match="1 to 4 stages"):
        ResNet(layers=(1,) * 5)


def test_the_guidance_chapters_builders_follow_their_configs():
    import dataclasses

    from untrainable.experiments import fcn_guidance, plain_cnn_guidance
    from untrainable.models import build_guide, build_target

    deep, wide = (next(c for c in fcn_guidance.configs("quick") if c.target == t) for t in ("deep_fcn", "wide_fcn"))
    assert count_parameters(build_target(deep)) == count_parameters(
        deep_fcn(3 * 32 * 32, deep.fcn_width, deep.fcn_depth, deep.fcn_first_width, 10, deep.fcn_dropout))
    assert count_parameters(build_target(wide)) == count_parameters(wide_fcn(3 * 32 * 32, wide.wide_width,
                                                                              wide.wide_depth, 10))
    target = build_target(plain_cnn_guidance.configs("quick")[0])
    blocks = [m for m in target.modules() if isinstance(m, BasicBlock)]
    assert isinstance(target, ResNet) and blocks and not any(b.residual for b in blocks)
    small = next(c for c in fcn_guidance.configs("quick") if c.condition == "small_cnn_guide").guide
    assert isinstance(build_guide(small), SmallCNN) and build_guide(deep.reference_guide, 7)(
        torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError, match="Config.target must be one of"):  # the config refuses it first
        dataclasses.replace(deep, target="vit")
    with pytest.raises(ValueError, match="unknown target 'vit'"):  # and so does the builder, given one
        build_target(_forced(deep, target="vit"))
    with pytest.raises(ValueError, match="unknown guide family 'vgg'"):
        build_guide(_forced(small, family="vgg"))


def _forced(config, **values):
    """A copy of a frozen config with ``values`` set past its own checks (to test a builder's)."""
    copy = dataclasses.replace(config)
    for name, value in values.items():
        object.__setattr__(copy, name, value)
    return copy


def test_the_builders_protocols_name_fields_their_configs_have():
    """``models`` describes the configs it reads by protocols (it imports no chapter): each protocol's
    fields must stay fields of the chapter's config class."""
    import dataclasses

    from untrainable.experiments.image_guidance import Config
    from untrainable.experiments.image_guides import GuideConfig
    from untrainable.models import GuideSpec, TargetSpec

    for spec, config in ((TargetSpec, Config), (GuideSpec, GuideConfig)):
        wanted = {n for n, v in vars(spec).items() if isinstance(v, property)}
        fields = {f.name for f in dataclasses.fields(config)}
        assert wanted and wanted <= fields, f"{spec.__name__} names fields {config.__name__} lacks: {wanted - fields}"
