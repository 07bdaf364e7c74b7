"""The page "Guidance in your own training loop" runs as printed: its code block is executed here."""

from __future__ import annotations

import re

import torch

from untrainable.paths import repo_root

PAGE = repo_root() / "book" / "own_training_loop.md"


def test_the_pages_code_block_trains_a_guided_target(capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)
    assert len(blocks) == 1 and len(blocks[0].splitlines()) <= 20  # a short block a reader copies whole
    namespace: dict = {}
    exec(compile(blocks[0], str(PAGE), "exec"), namespace)
    guidance, target = namespace["guidance"], namespace["target"]
    assert [p for p in guidance.pairs] == [("layer2", "2"), ("layer4", "4")]
    assert len(guidance.log) == 5 and all(0.0 <= t <= 1.0 + 1e-5 for t in guidance.log[-1]["terms"])
    assert not any(p.requires_grad for p in namespace["guide"].parameters())  # frozen on the spot
    assert all(p.grad is not None for p in target.parameters())  # the loss reached every target weight
    assert torch.isfinite(namespace["loss"]) and "'terms'" in capsys.readouterr().out
