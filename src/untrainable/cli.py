"""Command line: ``python -m untrainable reproduce|book|verdicts|data``.

    python -m untrainable reproduce --profile quick           # every notebook, then the book
    python -m untrainable reproduce --profile full --only 01  # one chapter
    python -m untrainable verdicts --profile full --csv       # the verdict of every paper number, for scripts
    python -m untrainable data check                          # are the datasets where we look?
    python -m untrainable data download cifar10               # opt-in download (needs internet)

Every argument is checked before any work starts: a bad ``--only``, ``--device`` or ``--seeds``
ends the command at once with a message naming the value (exit status 2).
"""

from __future__ import annotations

import argparse
import re
import sys

from untrainable.profiles import PROFILES

__all__ = ["SEED_LIMIT", "DEVICE_FORMS", "parse_prefixes", "parse_device", "parse_seeds", "check_device_present",
           "main"]

#: Seeds are stored in records and fed to NumPy, whose seeds stop at 2**32 - 1.
SEED_LIMIT = 2**32
#: The devices ``--device`` accepts.
DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"


def parse_prefixes(text: str) -> list[str]:
    """``--only``: comma-separated notebook prefixes, none of them empty (``""`` and ``","`` are errors)."""
    prefixes = [p.strip() for p in text.split(",")]
    if not all(prefixes):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of notebook prefixes: give them comma-separated, e.g. --only 01,04"
        )
    return prefixes


def parse_device(text: str) -> str:
    """``--device``: one of :data:`DEVICE_FORMS`; TPUs are refused by name (PyTorch needs torch_xla)."""
    device = text.strip().lower()
    if device in ("tpu", "xla") or device.startswith(("tpu:", "xla:")):
        raise argparse.ArgumentTypeError(
            f"{text!r}: TPUs are not supported (this book runs plain PyTorch, without torch_xla); choose {DEVICE_FORMS}"
        )
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: choose {DEVICE_FORMS}")
    return device


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: comma-separated integers in ``[0, 2**32)``, each named when it is not one."""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d+", part):
            raise argparse.ArgumentTypeError(
                f"seed {part!r} is not a non-negative integer: give seeds comma-separated, e.g. --seeds 0,1,2"
            )
        if int(part) >= SEED_LIMIT:
            raise argparse.ArgumentTypeError(f"seed {part} is too large: seeds must be below 2**32 = {SEED_LIMIT}")
        seeds.append(int(part))
    return seeds


def check_device_present(device: str) -> None:
    """Raise ``ValueError`` when the asked-for accelerator is not on this machine (``auto`` and ``cpu`` always are)."""
    if device in ("auto", "cpu"):
        return
    import torch

    if device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError("--device mps: Apple's MPS is not available here; use auto or cpu")
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        raise ValueError(f"--device {device}: this machine has {count} CUDA device(s); use auto or cpu")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m untrainable", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reproduce", help="execute the notebooks in order with papermill, then build the book")
    r.add_argument("--profile", default="full", choices=PROFILES,
                   help="quick: minutes on a CPU; full: the book's reproduction (default); paper: the papers' scale")
    r.add_argument("--only", type=parse_prefixes, default=None, help="comma-separated notebook prefixes, e.g. 01,04")
    r.add_argument("--force", action="store_true", help="retrain even when an identical record is stored")
    r.add_argument("--train-missing", action="store_true",
                   help="full: train the records that are not stored (otherwise they are listed and nothing runs)")
    r.add_argument("--device", type=parse_device, default="auto", help=DEVICE_FORMS + " (default auto)")
    r.add_argument("--seeds", type=parse_seeds, default=None,
                   help="comma-separated seeds in [0, 2**32) (default: each profile's own)")
    r.add_argument("--no-book", action="store_true", help="execute the notebooks only")

    b = sub.add_parser("book", help="build the book from the notebooks already executed for a profile")
    b.add_argument("--profile", default="full", choices=PROFILES)

    v = sub.add_parser("verdicts", help="the verdict of every paper number from the stored records (trains nothing)")
    v.add_argument("--profile", default="full", choices=PROFILES)
    v.add_argument("--csv", action="store_true", help="CSV for scripts (default: a table to read)")

    d = sub.add_parser("data", help="check or (with internet) download the datasets")
    d.add_argument("action", choices=("check", "download"))
    d.add_argument("names", nargs="*", default=["cifar10", "mnist", "tinyshakespeare"])
    return p


def _data(action: str, names: list[str]) -> int:
    from untrainable import data
    from untrainable.paths import data_root

    loaders = {"cifar10": lambda: data.load_cifar10(train=False), "mnist": lambda: data.load_mnist(train=False),
               "tinyshakespeare": data.load_tiny_shakespeare}
    unknown = [name for name in names if name not in loaders]
    if unknown:
        print(f"unknown dataset(s) {', '.join(map(repr, unknown))}: choose from {', '.join(loaders)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        if action == "download":
            print(f"{name}: downloaded into {data.download(name)}")
            continue
        try:
            loaders[name]()
            print(f"{name}: ok ({data_root()})")
        except data.DatasetNotFoundError as err:
            print(err, file=sys.stderr)
            status = 1
    return status


def _verdicts(profile: str, as_csv: bool) -> str:
    """The verdict table of ``profile``'s stored records: CSV, or aligned text to read."""
    from untrainable import paper_comparison as PC

    if as_csv:
        return PC.verdicts_csv(profile)
    v = PC.verdicts(profile)[["seeds", "effect", "ci_low", "ci_high", "p_value", "verdict"]]
    return v.to_string(float_format=lambda x: f"{x:.3g}") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from untrainable.reproduce import ReproduceError, build_book, reproduce

    try:
        if args.command == "reproduce":
            try:
                check_device_present(args.device)
            except ValueError as err:
                parser.exit(2, f"{parser.prog} reproduce: error: {err}\n")
            reproduce(args.profile, only=args.only, force=args.force, device=args.device, book=not args.no_book,
                      seeds=args.seeds, train_missing=args.train_missing)
        elif args.command == "book":
            print(f"book built: {build_book(args.profile) / 'index.html'}")
        elif args.command == "verdicts":
            print(_verdicts(args.profile, args.csv), end="")
        else:
            return _data(args.action, args.names)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
