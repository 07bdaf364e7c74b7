"""Chapter 06: sequence tasks, batch-first sequence models, sequence guidance, the experiment's runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from untrainable import data as D
from untrainable import guidance as G
from untrainable.models import CausalTransformer, StackedRNN, TransformerClassifier
from untrainable.recording import LayerRecorder
from untrainable.results import REQUIRED_KEYS
from untrainable.train import IGNORE, FitSettings, cross_entropy, cross_entropy_loss, evaluate, fit

# ----------------------------------------------------------------------------- tasks


def test_copy_task_is_seeded_and_its_target_is_the_source():
    x, y = D.copy_task(200, 20, 40, seed=3)
    x2, y2 = D.copy_task(200, 20, 40, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, D.copy_task(200, 20, 40, seed=4)[0])
    assert x.shape == y.shape == (200, 80) and x.dtype == torch.int64
    lengths = (x == D.COPY_TOKEN).int().argmax(1)
    assert lengths.min() >= 20 and lengths.max() <= 40 and len(set(lengths.tolist())) > 10
    for i in range(200):
        L = int(lengths[i])
        source = x[i, :L]
        assert (source < 10).all() and (x[i] == D.COPY_TOKEN).sum() == 1
        assert torch.equal(y[i, L:2 * L], source)  # the labels of the copied part are the source string
        assert torch.equal(x[i, L + 1:2 * L], source[:-1])  # the input is the sequence shifted by one
        assert (y[i, :L] == IGNORE).all() and (y[i, 2 * L:] == IGNORE).all()
        assert (x[i, 2 * L:] == D.COPY_PAD).all()


def test_parity_labels_are_the_sum_mod_2():
    x, y = D.parity_task(300, 2, 50, seed=0)
    assert x.shape == (300, 50) and y.shape == (300,)
    assert torch.equal(x, D.parity_task(300, 2, 50, seed=0)[0])
    for row, label in zip(x.tolist(), y.tolist()):
        bits = row[: row.index(D.PARITY_PAD)] if D.PARITY_PAD in row else row
        assert 2 <= len(bits) <= 50 and set(bits) <= {0, 1} and all(t == D.PARITY_PAD for t in row[len(bits):])
        assert label == sum(bits) % 2
    assert 0.4 < y.float().mean() < 0.6


def test_char_corpus_split_is_fixed_contiguous_and_disjoint():
    text = "".join(chr(97 + (i * 7) % 26) for i in range(1000))
    c = D.char_corpus(text)
    assert (len(c.train), len(c.valid), len(c.test)) == (900, 50, 50)
    assert c.decode(torch.cat([c.train, c.valid, c.test])) == text  # in order, nothing lost or shared
    assert c.vocab == "".join(sorted(set(text)))
    x, y = D.lm_sequences(c.train, 16)
    assert x.shape == (56, 16) and torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y[:-1, -1], x[1:, 0])
    with pytest.raises(ValueError, match="fractions"):
        D.char_corpus(text, (0.9, 0.2, 0.1))


def test_tiny_shakespeare_task_has_the_fixed_split():
    d = D.sequence_data("char_lm", 10, 4, 4, seq_len=64)
    corpus = D.char_corpus(D.load_tiny_shakespeare())
    assert d.vocab_size == 65 and d.pad_id is None
    assert torch.equal(d.test[0][0], corpus.test[:64]) and torch.equal(d.valid[0][0], corpus.valid[:64])
    assert len(corpus.train) + len(corpus.valid) + len(corpus.test) == 1_115_394


def test_generated_test_sets_do_not_depend_on_the_run_seed():
    a, b = D.sequence_data("copy", 64, 32, 32, seed=0), D.sequence_data("copy", 64, 32, 32, seed=1)
    assert not torch.equal(a.train[0], b.train[0]) and torch.equal(a.test[0], b.test[0])
    assert torch.equal(a.valid[1], b.valid[1]) and not torch.equal(a.valid[0], a.test[0])


def test_clear_errors_for_unknown_tasks_and_bad_lengths():
    with pytest.raises(ValueError, match="unknown sequence task 'sort'"):
        D.sequence_data("sort", 10, 10, 10)
    with pytest.raises(ValueError, match="min_len <= max_len"):
        D.copy_task(4, 10, 5)
    with pytest.raises(ValueError, match="min_len <= max_len"):
        D.parity_task(4, 0, 5)
    with pytest.raises(ValueError, match="no window"):
        D.lm_sequences(torch.arange(5), 10)


# ----------------------------------------------------------------------------- models


def _models(vocab: int = 12, t: int = 8) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {"rnn": StackedRNN(vocab, 16, 3, 8), "lstm": StackedRNN(vocab, 16, 2, 8, kind="lstm"),
            "causal": CausalTransformer(vocab, 16, 2, 32, 3, max_len=t),
            "encoder": TransformerClassifier(vocab, 16, 2, 32, 2, max_len=t, pad_id=vocab - 1),
            "parity_rnn": StackedRNN(vocab, 16, 2, 8, outputs=2, head="last", pad_id=vocab - 1)}


@pytest.mark.parametrize("kind", ["rnn", "lstm", "causal", "encoder", "parity_rnn"])
def test_recorded_activations_are_batch_first_with_t_equal_to_b(kind):
    """With T = B a swapped axis would keep every shape; changing example 0 must change row 0 only."""
    model = _models()[kind].eval()
    x = torch.randint(0, 10, (8, 8))
    x2 = x.clone()
    x2[0, :3] = (x[0, :3] + 1) % 10  # example 0 differs from its first token on
    layers = G.guidance_layers(model, x)
    with torch.no_grad(), LayerRecorder(model, layers) as rec:
        model(x)
        a = dict(rec.outputs)
        model(x2)
        b = rec.outputs
    for name in layers:
        assert a[name].shape[:2] == (8, 8)
        assert not torch.allclose(a[name][0], b[name][0]), name
        assert torch.allclose(a[name][1:], b[name][1:]), f"{name}: another example changed, the axes are swapped"


def test_every_layer_is_recorded_and_sequence_first_is_refused():
    m = _models()
    x = torch.randint(0, 10, (2, 8))
    assert G.guidance_layers(m["rnn"], x) == ["layers.0", "layers.1", "layers.2"]
    assert G.guidance_layers(m["causal"], x) == ["layers.0", "layers.1", "layers.2", "norm"]

    class SequenceFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.RNN(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[0])

    with pytest.raises(ValueError, match="batch_first=False"):
        G.guidance_layers(SequenceFirst(), torch.randn(3, 3, 4))


def test_transformer_layers_are_distinct_modules():
    for model in (_models()["causal"], _models()["encoder"]):
        layers = list(model.layers)
        assert len({id(m) for m in layers}) == len(layers)
        ptrs = [{p.data_ptr() for p in m.parameters()} for m in layers]
        assert all(not (ptrs[i] & ptrs[j]) for i in range(len(ptrs)) for j in range(i + 1, len(ptrs)))
        assert not torch.equal(layers[0].linear1.weight, layers[1].linear1.weight)


def test_causal_transformer_does_not_look_ahead_and_the_encoder_ignores_padding():
    m = _models()
    causal, encoder = m["causal"].eval(), m["encoder"].eval()
    x = torch.randint(0, 10, (2, 8))
    y = x.clone()
    y[:, 5:] = (x[:, 5:] + 1) % 10
    with torch.no_grad():
        assert torch.allclose(causal(x)[:, :5], causal(y)[:, :5], atol=1e-6)
        assert not torch.allclose(causal(x)[:, 5:], causal(y)[:, 5:])
        short = torch.tensor([[1, 0, 1, 11, 11, 11, 11, 11]])
        assert torch.allclose(encoder(short), encoder(short[:, :3]), atol=1e-5)  # padding changes nothing
    with pytest.raises(ValueError, match="max_len"):
        causal(torch.zeros(1, 9, dtype=torch.long))


# ----------------------------------------------------------------------------- training and guidance


def test_per_token_loss_and_accuracy_skip_ignored_positions():
    logits = torch.zeros(2, 3, 4)
    logits[0, 0, 1] = logits[0, 1, 2] = logits[1, 2, 3] = 5.0
    y = torch.tensor([[1, 0, IGNORE], [IGNORE, IGNORE, 3]])
    mask = y != IGNORE
    expected = torch.nn.functional.cross_entropy(logits[mask], y[mask])
    assert torch.allclose(cross_entropy(logits, y), expected)

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return logits[x[:, 0]] + self.w

    res = evaluate(Fixed(), torch.tensor([[0], [1]]), y, torch.device("cpu"))
    assert res["acc"] == pytest.approx(2 / 3) and res["loss"] == pytest.approx(expected.item(), rel=1e-6)


def test_sequence_rows_flatten_and_per_token_shapes():
    a = torch.randn(4, 5, 3)
    assert G.sequence_rows(a).shape == (4, 15)
    assert G.sequence_rows(a, "per_token").shape == (20, 3)
    keep = torch.ones(4, 5, dtype=torch.bool)
    keep[:, 3:] = False
    assert torch.equal(G.sequence_rows(a, "per_token", keep), a[:, :3].reshape(-1, 3))
    assert G.sequence_rows(torch.randn(4, 6), "per_token").shape == (4, 6)
    with pytest.raises(ValueError, match="unknown token mode"):
        G.sequence_rows(a, "per_step")


@pytest.mark.parametrize("tokens", ["flatten", "per_token"])
def test_sequence_guidance_loss_has_gradients_for_the_target_only(tokens):
    torch.manual_seed(0)
    target = StackedRNN(12, 16, 3, 8)
    guide = CausalTransformer(12, 16, 2, 32, 2, max_len=16)
    x, y = D.copy_task(16, 3, 8, seed=0)
    loss_fn = G.GuidanceLoss(target, guide, x[:2], task_loss=cross_entropy, tokens=tokens, pad_id=D.COPY_PAD)
    assert loss_fn.pairs == [("layers.0", "layers.0"), ("layers.1", "layers.1"), ("norm", "layers.2")]
    loss, logits = loss_fn(target, x, y)
    task = cross_entropy(logits, y)
    entry = loss_fn.log[-1]
    assert loss.item() == pytest.approx(task.item() + entry["guidance"], rel=1e-5)
    assert 0 < entry["guidance"] < 3
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in target.layers.parameters())
    assert all(p.grad is None for p in guide.parameters())
    # the two modes compare different rows, so their distances differ
    other = G.GuidanceLoss(target, guide, x[:2], task_loss=cross_entropy,
                           tokens="per_token" if tokens == "flatten" else "flatten", pad_id=D.COPY_PAD)
    other(target, x, y)
    assert other.log[-1]["guidance"] != pytest.approx(entry["guidance"], rel=1e-3)


def test_tiny_parity_training_beats_chance_clearly():
    torch.manual_seed(0)
    x, y = D.parity_task(1024, 2, 4, seed=0)
    xt, yt = D.parity_task(256, 2, 4, seed=1)
    model = StackedRNN(3, 32, 1, 8, outputs=2, head="last", pad_id=D.PARITY_PAD)
    history = fit(model, (x, y), (xt, yt), FitSettings(epochs=12, batch_size=64, lr=1e-2),
                  generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), loss_fn=cross_entropy_loss)
    assert history[-1]["test_acc"] > 0.9, history[-1]


def test_tiny_copy_training_learns_per_token():
    torch.manual_seed(0)
    x, y = D.copy_task(1024, 2, 3, seed=0)
    xt, yt = D.copy_task(256, 2, 3, seed=1)
    model = CausalTransformer(D.COPY_VOCAB, 32, 2, 64, 2, max_len=6)
    history = fit(model, (x, y), (xt, yt), FitSettings(epochs=15, batch_size=64, lr=3e-3),
                  generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))
    assert history[-1]["test_acc"] > 0.6, history[-1]  # chance: 0.1


# ----------------------------------------------------------------------------- the experiment


def test_presets_scale_up_and_the_paper_preset_has_the_papers_models():
    from untrainable.experiments import sequence_guidance as sg

    quick, full, paper = (sg.configs(p) for p in ("quick", "full", "paper"))
    assert [(c.setting, c.condition) for c in full] == [(s, k) for s in sg.SETTINGS for k in sg.CONDITIONS]
    assert all(q.n_train < f.n_train for q, f in zip(quick, full) if q.task != "char_lm")
    copy = next(c for c in paper if c.setting == "copy" and c.condition == "trained_guide")
    assert (copy.net.family, copy.net.width, copy.net.layers, copy.net.embed) == ("rnn", 512, 4, 256)
    assert (copy.guide.width, copy.guide.heads, copy.guide.ff, copy.guide.layers) == (512, 16, 2048, 4)
    f_copy = next(c for c in full if c.setting == "copy")
    f_parity = next(c for c in full if c.setting == "parity")
    assert (f_copy.min_len, f_copy.max_len, f_parity.max_len) == (5, 10, 30)  # the cells appendix 93 chose
    assert f_copy.fresh and f_parity.fresh and f_copy.tokens == f_parity.tokens == "per_token"
    assert (copy.min_len, copy.max_len) == (20, 40) and next(c for c in paper if c.setting == "parity").max_len == 50
    assert all(c.tokens == "per_token" for c in sg.configs("quick", tokens="per_token"))
    with pytest.raises(ValueError, match="unknown setting"):
        sg.configs("quick", ["sorting"])


def test_an_unknown_preset_or_override_key_is_an_error_naming_it_and_the_chapter():
    from untrainable.experiments import sequence_guidance as sg
    from untrainable.profiles import PresetError, replace_preset

    with pytest.raises(PresetError, match=r"chapter 06.*'lstmm'"):
        sg.configs("quick", lstmm=True)
    with pytest.raises(PresetError, match=r"chapter 06.*'epoch'"):
        replace_preset(sg.CHAPTER, sg.PRESETS["full"].tasks["copy"], epoch=3)
    with pytest.raises(PresetError, match=r"chapter 06.*'sorting'"):
        replace_preset(sg.CHAPTER, sg.PRESETS["full"],
                       run_settings={sg.Run("sorting", "no_guide"): sg.RunSettings(lr=1e-3)})
    with pytest.raises(PresetError, match=r"chapter 06.*one task per setting"):
        replace_preset(sg.CHAPTER, sg.PRESETS["full"], tasks={"copy": sg.PRESETS["full"].tasks["copy"]})
    assert {c.net.family for c in sg.configs("quick", ["lm"], lstm=True) if c.condition != "guide_alone"} == {"lstm"}
    paper_lm = next(c for c in sg.configs("paper", ["lm"]))
    assert paper_lm.n_train == paper_lm.n_valid == sg.EVERY_WINDOW  # a text corpus's None sizes: every window


def test_a_guide_alone_run_keeps_the_config_defaults_of_what_it_drops():
    from untrainable.experiments import sequence_guidance as sg

    c = next(c for c in sg.configs("full", ["copy"], alpha=3.0) if c.condition == "trained_guide")
    g = sg.guide_alone_config(c)
    assert (g.alpha, g.guide_lr, g.guide_reseeds) == (1.0, None, ()) and g.lr == c.guide_lr
    with pytest.raises(KeyError, match="'alphas'"):
        sg.config_defaults("alphas")


def test_smoke_run_writes_records_caches_guides_and_reloads(monkeypatch):
    from untrainable.experiments import sequence_guidance as sg

    records = sg.run("quick", seeds=(0,), smoke=True)
    assert [r["name"] for r in records] == [f"{s}-{c}" for s in sg.SETTINGS for c in sg.CONDITIONS]
    for r in records:
        assert all(k in r for k in REQUIRED_KEYS)
        assert 0 <= r["metrics"]["test_acc"] <= 1 and r["metrics"]["perplexity"] > 1
        assert ("pairs" in r) == (r["config"]["condition"] in ("trained_guide", "untrained_guide"))
        if r["config"]["condition"] != "guide_alone":
            assert len(r["final_cka"]["trained"]) == len(r["probe_pairs"]["trained"])
    guided = next(r for r in records if r["name"] == "copy-trained_guide")
    assert len(guided["history"][-1]["pair_distance"]) == len(guided["pairs"])
    c = next(c for c in sg.configs("quick", ["copy"], smoke=True) if c.condition == "guide_alone")
    assert sg.weights_path("quick", c, 0).is_file()
    monkeypatch.setattr(sg, "resolve_guides", lambda *a, **k: pytest.fail("resolved guides for a stored record"))
    again = sg.run("quick", seeds=(0,), smoke=True)
    assert [(r["key"], r["created"]) for r in again] == [(r["key"], r["created"]) for r in records]


def test_every_full_run_of_chapter_06_has_its_committed_record(monkeypatch):
    from untrainable.experiments import missing_records
    from untrainable.experiments import sequence_guidance as sg
    from untrainable.paths import repo_root

    monkeypatch.setenv("UNTRAINABLE_RESULTS", str(repo_root() / "results"))
    assert missing_records("full", ["06"]) == []
    sweep = len(sg.PRESETS["full"].sweep_settings) * len(sg.CONDITIONS) * len(sg.PRESETS["full"].sweep_lrs)
    seeds = {s: len(sg.setting_seeds("full", s)) for s in sg.SETTINGS}
    assert seeds == {"copy": 5, "parity": 10, "lm": 3}  # a headline claim; a bimodal control; the default
    assert len(sg.planned_runs("full")) == len(sg.CONDITIONS) * sum(seeds.values()) + sweep


def test_the_shell_entry_trains_missing_records(monkeypatch):
    from untrainable.experiments import sequence_guidance as sg

    calls = []
    monkeypatch.setattr(sg, "run", lambda *a, **k: calls.append((a, k)))
    sg.main(["--settings", "lm", "--seeds", "1"])
    assert calls == [(("full",), {"seeds": (1,), "device": "auto", "settings": ("lm",),
                                  "conditions": set(sg.CONDITIONS), "train_missing": True})]


def test_mapping_table_shows_each_pair_and_its_shapes():
    from untrainable.experiments import sequence_guidance as sg

    c = next(c for c in sg.configs("quick", ["parity"]) if c.condition == "trained_guide")
    data = sg.load_data(c)
    rows = sg.mapping_table(sg.build_net(c.guide, data), sg.build_net(c.net, data), data.train[0][:4])
    assert rows[0]["guide layer"] == "layers.0" and rows[-1]["target layer"] == "norm"
    assert rows[0]["target kind"] == "TransformerEncoderLayer" and rows[0]["guide kind"] == "RNN"
    assert rows[0]["guide output"] == (data.train[0].shape[1], c.guide.width)


def test_paper_preset_runs_on_a_tiny_slice():
    from untrainable.experiments import sequence_guidance as sg

    records = sg.run("paper", seeds=(0,), settings=["parity"], smoke=True)
    assert [r["config"]["max_len"] for r in records] == [50] * 4
    assert records[2]["pairs"] and records[0]["profile"] == "paper"


def test_the_word_corpus_reads_its_vocabulary_from_the_training_part_alone():
    text = "the cat sat.\nthe dog sat!\nthe bird flew; a fish swam, the end\n" * 3 + "zebra zebra zebra"
    c = D.word_corpus(text, vocab_size=6)
    assert c.vocab[0] == "<unk>" and c.vocab[1:3] == ("the", "\n") and len(c.vocab) == 6
    assert "zebra" not in c.vocab  # only in the test part: <unk>, as for an unseen text
    assert (c.test == 0).any() and len(c.train) + len(c.valid) + len(c.test) == len(D._WORD.findall(text.lower()))
    assert c.decode(c.train[:4]) == " ".join(w if w in c.vocab else "<unk>" for w in ("the", "cat", "sat", "."))
    with pytest.raises(ValueError, match="vocab_size must be at least 2"):
        D.word_corpus(text, vocab_size=1)


def test_word_windows_predict_the_next_word():
    d = D.sequence_data("word_lm", 10, 4, 4, seq_len=16)
    assert d.task == "word_lm" and d.pad_id is None and d.vocab_size == D.WORD_VOCAB == d.num_outputs
    assert d.train[0].shape == (10, 16) and torch.equal(d.train[0][0, 1:], d.train[1][0, :-1])
