"""The guided-step benchmark: FLOP counts with known values, and every variant measured."""

from __future__ import annotations

import torch
from torch import nn

from untrainable.benchmarks import guidance_step as B
from untrainable.models import FCN, resnet18


def test_count_flops_of_a_linear_layer_forward_and_backward():
    layer = nn.Linear(4, 3, bias=False)
    x = torch.randn(2, 4)
    assert B.count_flops(lambda: layer(x)) == 2 * 2 * 4 * 3  # one multiply and one add per weight and example
    # forward, then the weight's gradient (the same product again); x needs no gradient
    assert B.count_flops(lambda: layer(x).sum().backward()) == 2 * (2 * 2 * 4 * 3)


def test_measure_times_and_counts_every_variant():
    torch.manual_seed(0)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    target, guide = FCN(3 * 32 * 32, [32] * 4, num_classes=10), resnet18(width=4)
    out = B.measure(target, guide, x, y, batch_size=16, rounds=1)
    assert set(out["ratio"]) == set(out["ratio_flops"]) == {"naive", "online", "bank_features", "bank_gram"}
    flops = out["flops"]
    assert all(f > 0 for f in flops.values())
    # a Gram bank skips the guide's forward pass: less arithmetic than running the guide every step
    assert flops["bank_gram"] < flops["online"] and out["ratio_flops"]["bank_gram"] < 1.0
    assert flops["online"] > flops["target"] + flops["guide_forward"]  # plus the CKA products


def test_committed_benchmark_records_load_with_their_keys(monkeypatch):
    """The full records the book shows are found where the benchmarks look, and the CKA record's key
    is still the hash of the preset it was measured with (its network is not part of the key)."""
    import dataclasses
    import json

    from untrainable.benchmarks import cka
    from untrainable.paths import repo_root
    from untrainable.results import run_key

    monkeypatch.setenv("UNTRAINABLE_RESULTS", str(repo_root() / "results"))  # the committed store, read only
    assert cka.record_file("full").is_file() and B.record_file("full").is_file()
    record = cka.run("full")  # loads: nothing is measured
    assert record["key"] == run_key(cka.EXPERIMENT, cka.PRESETS["full"], record["seed"])
    assert record["config"] == json.loads(json.dumps(dataclasses.asdict(cka.PRESETS["full"])))
    assert len(cka.cells_frame(record)) == len(cka.PRESETS["full"].ns) * len(cka.PRESETS["full"].ds)
    guided = B.run("full")
    assert {c["target"] for c in guided["cases"]} == {"deep_fcn", "plain_cnn"}
    assert set(B.table(guided)["variant"]) == set(B.VARIANTS)


def test_minibatch_benchmark_layers_are_resnet18_modules():
    from untrainable.benchmarks import cka
    from untrainable.recording import resolve_layers

    assert len(cka.RESNET_LAYERS) == 11
    resolve_layers(resnet18(), cka.RESNET_LAYERS)  # raises for a name the network does not have


def test_the_benchmark_runs_on_another_dataset_and_stores_which(tmp_path):
    """``--dataset`` replaces CIFAR-10 (absent on a rented GPU, say): the record says which images were timed,
    and every variant of both chapters is measured on them."""
    from test_image_guidance import _image_folder

    root = _image_folder(tmp_path / "folder", classes=tuple("abcdefghij"), per_split={"train": 3, "val": 1}, size=36)
    B.main(["--profile", "quick", "--rounds", "1", "--dataset", f"imagefolder:{root}"])
    record = B.run("quick")  # loads what main stored
    assert record["config"]["dataset"] == f"imagefolder:{root}"
    assert {c["target"] for c in record["cases"]} == {"deep_fcn", "plain_cnn"}
    assert all(set(c["min_s"]) == set(B.VARIANTS) and c["n_train"] == 30 for c in record["cases"])
