"""Issue 33's probes: a store that serves only what was trained, and runs that survive a failed write.

One section per item of the issue; each test states its probe, what happened before and what is
expected now. Everything runs on tiny records and fake datasets in temporary folders (``conftest.py``);
the shared datasets are never touched.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from untrainable import cli, data, results, runtime
from untrainable import reproduce as R
from untrainable import similarity as S
from untrainable.config_checks import check_fields
from untrainable.files import save_torch_atomic
from untrainable.paths import repo_root
from untrainable.profiles import MAX_SEED, check_seeds


@dataclass(frozen=True)
class Toy:
    width: int
    lr: float = 1e-3


def _train(history_extra: dict | None = None, metrics: dict | None = None, seen: list | None = None):
    """A train function with FCN-like numbers that writes a checkpoint as a real one does; ``seen`` collects
    whether a checkpoint was there when it started (a resumed run)."""

    def train(config, seed, device, checkpoint):
        if seen is not None:
            seen.append(checkpoint.is_file())
        save_torch_atomic({"epoch": 1, "elapsed_s": 1.0}, checkpoint)
        row = {"epoch": 1, "test_acc": 0.528, **(history_extra or {})}
        return {"metrics": metrics or {"test_acc": 0.528, "checkpoint_test_acc": 0.53}, "history": [row]}

    return train


def _path(profile: str = "quick") -> Path:
    return results.record_path(profile, "toy", "fcn", 0, results.run_key("toy", Toy(8), 0))


def _checkpoint(profile: str = "quick") -> Path:
    return results.checkpoint_path(profile, "toy", _path(profile))


def _stored(profile: str = "quick") -> Path:
    results.run_or_load("toy", profile, "fcn", Toy(8), 0, _train(), train_missing=True)
    return _path(profile)


def _edit(path: Path, change, reseal: bool = False) -> None:
    record = json.loads(path.read_text())
    change(record)
    if reseal:  # as the store of another version would have written it
        record[results.DIGEST_KEY] = results.record_digest(record)
    path.write_text(json.dumps(record))


def _load(profile: str = "quick") -> dict:
    return results.run_or_load("toy", profile, "fcn", Toy(8), 0, _train())


# ============================================================================= 1. seeds are a set


@pytest.mark.parametrize("seeds, message", [
    ((0, 0, 1, 1, 2, 2), "0, 1, 2 repeated"), ((0, -1), "-1 out of range"), ((0, MAX_SEED + 1), f"{MAX_SEED + 1} out"),
    ((0, 1.5), "must be integers, got 1.5"), ((True,), "must be integers"),
], ids=["repeated", "negative", "too_large", "float", "bool"])
def test_item1_check_seeds_names_the_seeds_at_fault(seeds, message):
    """Probe 1: seeds repeated, negative, past 2**31 - 1 or not integers. Expected: a ValueError naming them."""
    with pytest.raises(ValueError, match=message):
        check_seeds(seeds)


def test_item1_distinct_seeds_in_range_pass_unchanged():
    assert check_seeds([2, 0, MAX_SEED]) == (2, 0, MAX_SEED)


def test_item1_repeated_seeds_end_the_command_before_any_work(run_cli, monkeypatch):
    """Probe 1 as the issue ran it: ``reproduce --profile full --only 04 --seeds 0,0,1,1,2,2 --no-book``.
    Before: accepted, every run counted twice in the chapter's means and tests. Now: exit 2 naming them."""
    calls = []
    monkeypatch.setattr(R, "execute_notebook", lambda *a, **k: calls.append(a))
    status, out = run_cli("reproduce", "--profile", "full", "--only", "04", "--seeds", "0,0,1,1,2,2", "--no-book")
    assert status == 2 and "0, 1, 2 repeated" in out and calls == []


def test_item1_reproduce_itself_refuses_repeated_seeds(monkeypatch):
    monkeypatch.setattr(R, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    with pytest.raises(R.ReproduceError, match="--seeds: .*3 repeated"):
        R.reproduce("quick", only=["01"], seeds=[3, 3], book=False)


# ============================================================================= 2. records are sealed


def test_item2_every_record_the_store_writes_carries_its_digest():
    record = json.loads(_stored().read_text())
    assert record[results.DIGEST_KEY] == results.record_digest(record)
    assert record[results.DIGEST_KEY].startswith("sha256:")


@pytest.mark.parametrize("change", [
    lambda r: (r["metrics"].update(test_acc=0.99), r["history"][-1].update(test_acc=0.99)),
    lambda r: r["metrics"].update(checkpoint_test_acc=0.99),
], ids=["test_acc_and_last_epoch", "checkpoint_test_acc"])
def test_item2_a_consistent_hand_edit_is_refused(change):
    """Probe 2: edit ``metrics.test_acc`` and the last history row alike, or ``metrics.checkpoint_test_acc``
    (no epoch to disagree with). Before: served. Now: refused, the file named, the fix given, nothing changed."""
    path = _stored()
    _edit(path, change)
    before = path.read_bytes()
    with pytest.raises(results.CorruptRecordError, match="does not match its digest: it was edited") as err:
        _load()
    assert str(path) in str(err.value) and "reproduce --train-missing" in str(err.value)
    assert path.read_bytes() == before


def test_item2_an_unsealed_full_record_is_refused_an_unsealed_quick_one_served_as_legacy():
    """Probe 2: a record without a digest. Every committed (full) record is sealed, so an unsealed one was
    made or edited by hand: refused. A reader's old quick record is served (it was never committed)."""
    for profile in ("full", "quick"):
        _edit(_stored(profile), lambda r: r.pop(results.DIGEST_KEY))
    with pytest.raises(results.CorruptRecordError, match="unsealed"):
        _load("full")
    assert _load("quick")["metrics"]["test_acc"] == 0.528
    _edit(_path("full"), lambda r: r.update(profile="quick"))  # its folder still says full
    with pytest.raises(results.CorruptRecordError, match="unsealed"):
        _load("full")


def test_item2_records_verify_names_every_broken_record_and_exits_1(run_cli):
    """Probe 2: ``python -m untrainable records verify``: 0 on a sound store, 1 naming each broken file."""
    path = _stored()
    assert run_cli("records", "verify")[0] == 0
    _edit(path, lambda r: r["metrics"].update(checkpoint_test_acc=0.99))
    status, out = run_cli("records", "verify", "--profile", "quick")
    assert status == 1 and path.name in out and "1 refused" in out


def test_item2_every_committed_record_is_sealed(monkeypatch):
    """The committed store as CI checks it (``.ci/run``): every record sealed and whole."""
    monkeypatch.delenv("UNTRAINABLE_RESULTS")
    checked, problems = results.verify_records()
    assert checked > 500 and problems == []


# ============================================================================= 3. required metrics


def test_item3_a_stored_record_missing_a_required_metric_names_file_metric_and_fix():
    path = _stored()
    with pytest.raises(results.CorruptRecordError, match=r"lacks the required metrics \['valid_acc'\]") as err:
        results.run_or_load("toy", "quick", "fcn", Toy(8), 0, _train(), required_metrics=("test_acc", "valid_acc"))
    assert str(path) in str(err.value) and "reproduce --train-missing" in str(err.value)


def test_item3_a_trained_record_missing_a_required_metric_is_not_stored_and_keeps_its_checkpoint():
    """Probe 3: a train function that forgets a metric the chapter reads. Before: written, then refused
    (or a KeyError later), its checkpoint gone. Now: an error naming the run and the metric, nothing
    stored, the checkpoint kept."""
    with pytest.raises(results.RecordWriteError, match=r"toy/fcn seed 0: .*lacks the required metrics \['valid_acc'\]"):
        results.run_or_load("toy", "quick", "fcn", Toy(8), 0, _train(), required_metrics=("valid_acc",))
    assert not _path().exists() and _checkpoint().is_file()


# ============================================================================= 4. nothing trained is lost


def test_item4_the_checkpoint_is_removed_only_once_the_record_is_stored():
    _stored()
    assert _path().is_file() and not _checkpoint().exists()


def test_item4_a_full_disk_keeps_the_checkpoint_and_a_rerun_resumes(monkeypatch):
    """Probe 4: the record's write fails (disk full). Before: the checkpoint was deleted first, so the
    whole run was lost. Now: the error names the run and the cause, the checkpoint stays, a rerun resumes."""
    def full_disk(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched, pytest.raises(results.RecordWriteError,
                                                         match=r"toy/fcn seed 0: .*No space left.*checkpoint .* kept"):
        patched.setattr(results, "write_json_atomic", full_disk)
        results.run_or_load("toy", "quick", "fcn", Toy(8), 0, _train())
    assert _checkpoint().is_file() and not _path().exists()
    seen: list[bool] = []
    results.run_or_load("toy", "quick", "fcn", Toy(8), 0, _train(seen=seen))
    assert seen == [True] and _path().is_file() and not _checkpoint().exists()


def test_item4_a_nan_in_a_history_diagnostic_names_its_json_path_and_keeps_the_checkpoint():
    """Probe 4: NaN in a history diagnostic (not a metric). Before: the strict JSON writer failed with
    "Out of range float values are not JSON compliant", naming nothing, after the checkpoint was deleted.
    Now: the run and ``$.history[0].grad_norm`` named, nothing written, the checkpoint kept."""
    with pytest.raises(results.NonFiniteRecordError, match=r"toy/fcn seed 0: .*\$\.history\[0\]\.grad_norm = nan"):
        results.run_or_load("toy", "quick", "fcn", Toy(8), 0, _train({"grad_norm": float("nan")}))
    assert not _path().exists() and _checkpoint().is_file()


# ============================================================================= 5. config validation


@dataclass(frozen=True)
class Checked:
    lr: float
    epochs: int = 1
    alpha: float | None = None
    keep: float = 0.5
    task: str = "copy"

    def __post_init__(self) -> None:
        check_fields(self, positive=("lr", "epochs"), non_negative=("alpha",), fractions=("keep",),
                     choices={"task": ("copy", "parity")})


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -0.1}, r"Checked\.lr must be a finite number > 0, got -0\.1"),
    ({"lr": float("nan")}, r"Checked\.lr .* got nan"), ({"lr": 0.1, "epochs": 0}, r"Checked\.epochs .*> 0"),
    ({"lr": True}, r"Checked\.lr"), ({"lr": 0.1, "alpha": -1.0}, r"Checked\.alpha .*>= 0"),
    ({"lr": 0.1, "keep": 1.5}, r"Checked\.keep .*in \[0, 1\]"),
    ({"lr": 0.1, "task": "sort"}, r"Checked\.task .*'copy'"),
], ids=["negative", "nan", "zero", "bool", "alpha", "fraction", "choice"])
def test_item5_a_bad_config_field_is_named_with_its_type(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Checked(**kwargs)


def test_item5_good_fields_and_unset_optional_ones_pass_and_a_misspelt_rule_does_not():
    assert Checked(0.1).alpha is None
    with pytest.raises(TypeError, match="Checked has no field 'lrr'"):
        check_fields(Checked(0.1), positive=("lrr",))


def test_item5_the_clis_checks_are_importable_as_plain_value_errors():
    """For the chapters' shell entries: the same checks, a ``ValueError`` instead of argparse's exit."""
    with pytest.raises(ValueError, match="TPUs are not supported"):
        cli.check_device("tpu")
    with pytest.raises(ValueError, match=f"{2**40} out of range"):
        cli.seeds_from_text(f"0,{2**40}")
    assert cli.check_device(" CUDA:1 ") == "cuda:1" and cli.seeds_from_text("2, 0") == (2, 0)


# ============================================================================= 6. data check checks every file


def _fake_cifar(root: Path, monkeypatch) -> Path:
    """Tiny stand-ins for CIFAR-10's seven files, their md5 sums standing in for the published ones."""
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    sums = {}
    for name in {**data.CIFAR10_MD5[True], **data.CIFAR10_MD5[False]}:
        (folder / name).write_bytes(name.encode() * 50)
        sums[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    monkeypatch.setattr(data, "CIFAR10_MD5", {split: {n: sums[n] for n in files}
                                              for split, files in data.CIFAR10_MD5.items()})
    return folder


def _idx(array) -> bytes:
    array = torch.as_tensor(array, dtype=torch.uint8).numpy()
    sizes = b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return {3: 0x0803, 1: 0x0801}[array.ndim].to_bytes(4, "big") + sizes + array.tobytes()


def _fake_mnist(root: Path, monkeypatch) -> Path:
    """Both MNIST splits, five images each, gzipped; their md5 sums (gzipped and not) stand in for the real ones."""
    raw = root / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gz_sums, raw_sums = dict(data.MNIST_MD5), dict(data.MNIST_RAW_MD5)
    for prefix in ("train", "t10k"):
        blobs = {f"{prefix}-images-idx3-ubyte": _idx(torch.arange(5 * 28 * 28).reshape(5, 28, 28) % 251),
                 f"{prefix}-labels-idx1-ubyte": _idx([3, 1, 4, 1, 5])}
        for stem, blob in blobs.items():
            (raw / f"{stem}.gz").write_bytes(gzip.compress(blob))
            gz_sums[stem] = hashlib.md5((raw / f"{stem}.gz").read_bytes()).hexdigest()
            raw_sums[stem] = hashlib.md5(blob).hexdigest()
    monkeypatch.setattr(data, "MNIST_MD5", gz_sums)
    monkeypatch.setattr(data, "MNIST_RAW_MD5", raw_sums)
    return raw


@pytest.fixture
def fake_data(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("UNTRAINABLE_DATA", str(root))
    _fake_cifar(root, monkeypatch), _fake_mnist(root, monkeypatch)
    return root


def test_item6_data_check_passes_on_sound_files(run_cli, fake_data):
    status, out = run_cli("data", "check", "cifar10", "mnist")
    assert status == 0 and "cifar10: ok" in out and "mnist: ok" in out


def test_item6_a_truncated_cifar_training_batch_is_named_by_data_check(run_cli, fake_data):
    """Probe 6: truncate ``data_batch_3``. Before: ``data check`` said ok (it read the test split) and
    training failed with torchvision's "Dataset not found or corrupted". Now: the file named, and the fix."""
    batch = fake_data / "cifar10" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:10])
    status, out = run_cli("data", "check", "cifar10")
    assert status == 1 and f"md5 mismatch for {batch}" in out and "python -m untrainable data download" in out


def test_item6_a_truncated_mnist_training_gz_is_named_by_data_check(run_cli, fake_data):
    """Probe 6: truncate ``train-images-idx3-ubyte.gz``. Before: "mnist: ok". Now: the file named."""
    gz = fake_data / "mnist" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-7])
    status, out = run_cli("data", "check", "mnist")
    assert status == 1 and f"md5 mismatch for {gz}" in out


def test_item6_an_altered_uncompressed_mnist_file_is_checksummed(fake_data):
    """Probe 6: an uncompressed MNIST file, one pixel changed (header and size still right). Before:
    read as it was. Now: an md5 mismatch naming it."""
    raw = fake_data / "mnist" / "MNIST" / "raw"
    blob = bytearray(gzip.decompress((raw / "train-images-idx3-ubyte.gz").read_bytes()))
    blob[-1] ^= 1
    (raw / "train-images-idx3-ubyte").write_bytes(bytes(blob))
    (raw / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(data.DatasetNotFoundError, match=f"md5 mismatch for {raw / 'train-images-idx3-ubyte'}:"):
        data.check_dataset("mnist")
    blob[-1] ^= 1
    (raw / "train-images-idx3-ubyte").write_bytes(bytes(blob))
    data.check_dataset("mnist")


def test_item6_the_unpacked_sums_are_those_of_the_published_files():
    """The uncompressed sums are the published gzipped files unpacked (checked on the shared copies, read only)."""
    raw = data.data_root() / "mnist" / "MNIST" / "raw"
    if not (raw / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("no MNIST here")
    blob = gzip.decompress((raw / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.md5(blob).hexdigest() == data.MNIST_RAW_MD5["t10k-labels-idx1-ubyte"]


# ============================================================================= 7. clear messages


def test_item7_a_record_from_a_newer_version_is_named_so_and_left_alone():
    """Probe 7: a record whose config has a field this version lacks (a newer version's ``added_field``).
    Before: "not a field of the requested config ... delete it". Now: "made by a newer version of
    untrainable", and no advice to delete it; the file is left as it is."""
    path = _stored()
    _edit(path, lambda r: r["config"].update(warmup=0), reseal=True)
    before = path.read_bytes()
    with pytest.raises(results.NewerRecordError, match="made by a newer version of untrainable") as err:
        _load()
    assert "config.warmup" in str(err.value) and "delete" not in str(err.value) and path.read_bytes() == before


def test_item7_a_bad_thread_count_names_the_variable(monkeypatch, run_cli):
    """Probe 7: ``UNTRAINABLE_THREADS=abc``. Before: "invalid literal for int()" from deep in a run."""
    monkeypatch.setenv("UNTRAINABLE_THREADS", "abc")
    with pytest.raises(ValueError, match="UNTRAINABLE_THREADS='abc'"):
        runtime.set_threads()
    monkeypatch.setattr(R, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    status, out = run_cli("reproduce", "--profile", "quick", "--only", "01")
    assert status == 2 and "UNTRAINABLE_THREADS='abc'" in out


def test_item7_unset_or_zero_threads_mean_every_core(monkeypatch):
    for value in ("", "0"):
        monkeypatch.setenv("UNTRAINABLE_THREADS", value)
        assert runtime.threads_from_env() is None
    monkeypatch.setenv("UNTRAINABLE_THREADS", " 2 ")
    assert runtime.threads_from_env() == 2


def test_item7_ctrl_c_during_reproduce_ends_with_one_line_saying_what_was_kept(run_cli, monkeypatch, tmp_path):
    """Probe 7: Ctrl-C in the second notebook. Before: a 63-line traceback. Now: exit 130 and one line
    naming the notebook, what finished and what was kept."""
    monkeypatch.setenv("UNTRAINABLE_ROOT", str(tmp_path))
    for name in ("01_first.ipynb", "02_second.ipynb"):
        (tmp_path / "notebooks").mkdir(exist_ok=True)
        (tmp_path / "notebooks" / name).write_text("{}")

    def execute(source, *args, **kwargs):
        if source.name.startswith("02"):
            raise KeyboardInterrupt
        return R.NotebookRun(source.name, 1.0)

    monkeypatch.setattr(R, "execute_notebook", execute)
    status, out = run_cli("reproduce", "--profile", "quick", "--no-book")
    lines = [line for line in out.splitlines() if not line.startswith("[reproduce]")]
    assert status == cli.INTERRUPTED and len(lines) == 1
    assert "interrupted during 02_second.ipynb" in lines[0] and "01_first.ipynb" in lines[0] and "kept" in lines[0]


def test_item7_a_truncated_checkpoint_is_moved_aside_and_the_run_restarts():
    """Probe 7: a checkpoint cut short (a crash while the disk filled). Before: every rerun failed on it.
    Now: renamed ``*.corrupt``, a warning, and the run trains from the start."""
    checkpoint = _checkpoint()
    save_torch_atomic({"epoch": 1, "elapsed_s": 5.0, "w": torch.zeros(100)}, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:50])
    seen: list[bool] = []
    with pytest.warns(results.CorruptCheckpointWarning, match="moved aside to .*corrupt, the run starts over"):
        results.run_or_load("toy", "quick", "fcn", Toy(8), 0, _train(seen=seen))
    assert seen == [False] and checkpoint.with_name(checkpoint.name + ".corrupt").is_file() and _path().is_file()


def test_item7_cka_of_overflowing_activations_says_overflow_not_constant():
    """Probe 7: float32 activations of 1e20 (finite, but their products overflow). Before:
    ConstantRepresentationError. Now: an error that says overflow, in either space."""
    x, y = torch.randn(40, 8) * 1e20, torch.randn(40, 8)
    for space in ("feature", "gram"):
        with pytest.raises(S.NonFiniteRepresentationError, match="x's products overflow torch.float32"):
            S.linear_cka(x, y, space=space)
    assert 0 <= S.linear_cka(x.double(), y.double()).item() <= 1


def test_item7_cka_of_nan_activations_raises_instead_of_returning_nan():
    """Probe 7: one NaN activation. Before: CKA returned NaN. Now: an error naming the argument and the NaN."""
    y = torch.randn(40, 8)
    y[3, 2] = float("nan")
    for space in ("feature", "gram"):
        with pytest.raises(S.NonFiniteRepresentationError, match="y holds 1 NaN"):
            S.linear_cka(torch.randn(40, 8), y, space=space)


# ============================================================================= 8. unused API


def test_item8_hsic_is_gone_cka_keeps_its_estimators():
    assert not hasattr(S, "hsic") and "hsic" not in S.__all__


#: The experiments whose runs carry a guidance or transfer term: their fp32 similarity computations round
#: differently on another CPU vendor, so a condition's seeds must come from one CPU kind (book/running.md).
GUIDED_EXPERIMENTS = ("image_guidance", "transfer_comparison", "sequence_guidance")


def _cpu_kind(record: dict) -> tuple:
    """Where a record trained, as far as rounding goes: CPU model, kernel flags and oneDNN cap (records from
    before the cap was recorded ran under the default cap)."""
    m = record.get("machine", {})
    return m.get("cpu"), tuple(m.get("cpu_flags", ())), m.get("onednn_max_cpu_isa", "AVX512_CORE_BF16")


def test_each_condition_of_the_guided_chapters_trained_on_one_cpu_kind():
    """A condition pools seeds; seeds from two CPU kinds would pool two roundings of the same recipe, and a
    reader rerunning on one kind could not reproduce the other's. Every committed ``full`` condition of the
    guided chapters names one CPU model and one set of kernel flags (and one oneDNN cap) across its seeds."""
    kinds: dict[tuple[str, str], set[tuple]] = {}
    for experiment in GUIDED_EXPERIMENTS:
        for path in sorted((repo_root() / "results" / "full" / experiment).glob("*.json")):
            r = json.loads(path.read_text())
            kinds.setdefault((experiment, r["name"]), set()).add(_cpu_kind(r))
    mixed = {k: v for k, v in kinds.items() if len(v) > 1}
    assert kinds and not mixed, f"conditions whose seeds trained on several CPU kinds: {sorted(mixed)}"


def test_chapter_07s_teachers_and_every_student_that_learns_from_them_trained_on_one_cpu_kind():
    """The teachers train in fp32 through kernels that round differently on another CPU vendor (retrained on
    an Intel Xeon, seed 1's first epoch reached 25.6 % train accuracy against the EPYC record's 25.55 %), so
    a student's targets depend on where its teachers trained: the teachers and every student that mimics
    them come from one CPU kind, and each label-trained condition from one kind too."""
    taught: set[tuple] = set()
    labels: dict[str, set[tuple]] = {}
    for experiment in ("mimic_teacher", "mimic_student"):
        for path in sorted((repo_root() / "results" / "full" / experiment).glob("*.json")):
            r = json.loads(path.read_text())
            if experiment == "mimic_teacher" or r["config"].get("teacher") is not None:
                taught.add(_cpu_kind(r))
            else:
                labels.setdefault(r["name"], set()).add(_cpu_kind(r))
    mixed = {k: v for k, v in labels.items() if len(v) > 1}
    assert len(taught) == 1, f"chapter 07's teachers and their students trained on several CPU kinds: {taught}"
    assert labels and not mixed, f"label-trained conditions whose seeds trained on several CPU kinds: {sorted(mixed)}"
