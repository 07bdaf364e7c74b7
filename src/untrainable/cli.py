"""Command line: ``python -m untrainable reproduce|book|verdicts|data|records``.

    python -m untrainable reproduce --profile quick           # every notebook, then the book
    python -m untrainable reproduce --profile full --only 01  # one chapter
    python -m untrainable verdicts --profile full --csv       # the verdict of every paper number, for scripts
    python -m untrainable data check                          # are the datasets where we look?
    python -m untrainable data download cifar10               # opt-in download (needs internet)
    python -m untrainable records verify --profile full       # is every stored record sealed and whole?

Under torchrun (``torchrun --nproc_per_node=N -m untrainable reproduce --profile paper``), every process
first trains the chosen chapters' missing records together (:func:`train_together`), then rank 0 alone
executes the notebooks, which find those records stored, and builds the book.

Every argument is checked before any work starts: a bad ``--only``, ``--device`` or ``--seeds``
ends the command at once with a message naming the value (exit status 2).
"""

from __future__ import annotations

import argparse
import re
import sys

from untrainable.profiles import PROFILES, check_seeds
# the device checks live beside resolve_device, so that every shell entry (the chapters' too) shares them
from untrainable.runtime import DEVICE_FORMS, check_device, parse_device

__all__ = ["DEVICE_FORMS", "INTERRUPTED", "parse_prefixes", "check_device", "parse_device", "seeds_from_text",
           "parse_seeds", "check_device_present", "train_together", "main"]

#: The exit status after Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130


def parse_prefixes(text: str) -> list[str]:
    """``--only``: comma-separated notebook prefixes, none of them empty (``""`` and ``","`` are errors)."""
    prefixes = [p.strip() for p in text.split(",")]
    if not all(prefixes):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of notebook prefixes: give them comma-separated, e.g. --only 01,04"
        )
    return prefixes


def seeds_from_text(text: str) -> tuple[int, ...]:
    """Comma-separated seeds (``"0,1,2"``), each an integer, all distinct and in range
    (:func:`untrainable.profiles.check_seeds`); else a ``ValueError`` naming the seed at fault."""
    parts = [part.strip() for part in text.split(",")]
    for part in parts:
        if not re.fullmatch(r"\d+", part):
            raise ValueError(f"seed {part!r} is not a non-negative integer: give seeds comma-separated, "
                             "e.g. --seeds 0,1,2")
    return check_seeds([int(part) for part in parts])


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: :func:`seeds_from_text`, its error argparse's (the command ends at once, exit status 2)."""
    try:
        return list(seeds_from_text(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


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


def train_together(profile: str, only: list[str] | None, seeds: list[int] | None, device: str, force: bool,
                   train_missing: bool) -> bool:
    """torchrun: every process trains the chosen chapters' records together (each chapter's validation sweep,
    where it has one, then its runs: what its notebook would train), then leaves the process group. Returns
    whether this process should go on to execute the notebooks and build the book: rank 0 only, with
    torchrun's variables removed, so the notebook kernels it starts run alone and find the records stored."""
    import os

    from untrainable import distributed as D
    from untrainable.experiments import CHAPTERS, chapter_modules
    from untrainable.reproduce import notebooks
    from untrainable.runtime import resolve_device

    if train_missing:
        os.environ["UNTRAINABLE_TRAIN_MISSING"] = "1"
    D.setup(gpu=resolve_device(device).type == "cuda")
    for prefix in dict.fromkeys(nb.name[:2] for nb in notebooks(only)):
        if prefix not in CHAPTERS:
            continue
        for module in chapter_modules(prefix):
            if hasattr(module, "run_sweep"):
                module.run_sweep(profile, device=device, force=force)
            module.run(profile, seeds=seeds, device=device, force=force)
    D.barrier()
    main = D.is_main()
    D.teardown()
    for name in D.TORCHRUN_ENV:
        os.environ.pop(name, None)
    return main


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
                   help="comma-separated distinct seeds in [0, 2**31) (default: each profile's own)")
    r.add_argument("--no-book", action="store_true", help="execute the notebooks only")

    b = sub.add_parser("book", help="build the book from the notebooks already executed for a profile")
    b.add_argument("--profile", default="full", choices=PROFILES)

    v = sub.add_parser("verdicts", help="the verdict of every paper number from the stored records (trains nothing)")
    v.add_argument("--profile", default="full", choices=PROFILES)
    v.add_argument("--csv", action="store_true", help="CSV for scripts (default: a table to read)")

    d = sub.add_parser("data", help="check or (with internet) download the datasets")
    d.add_argument("action", choices=("check", "download"))
    d.add_argument("names", nargs="*", default=["cifar10", "mnist", "tinyshakespeare"])

    rec = sub.add_parser("records", help="check every stored record (sealed, complete, finite); exit 1 on any problem")
    rec.add_argument("action", choices=("verify",))
    rec.add_argument("--profile", default=None, choices=PROFILES, help="one profile (default: every profile)")
    return p


def _data(action: str, names: list[str]) -> int:
    """``data check`` every file each dataset serves (both splits), or ``data download`` them."""
    from untrainable import data
    from untrainable.paths import data_root

    unknown = [name for name in names if name not in data.LAYOUTS]
    if unknown:
        print(f"unknown dataset(s) {', '.join(map(repr, unknown))}: choose from {', '.join(data.LAYOUTS)}",
              file=sys.stderr)
        return 2
    status = 0
    for name in names:
        if action == "download":
            print(f"{name}: downloaded into {data.download(name)}")
            continue
        try:
            data.check_dataset(name)
            print(f"{name}: ok, every file checked ({data_root()})")
        except data.DatasetNotFoundError as err:
            print(err, file=sys.stderr)
            status = 1
    return status


def _records(profile: str | None) -> int:
    """``records verify``: every stored record the store would refuse, named; exit status 1 if any."""
    from untrainable.paths import results_root
    from untrainable.results import verify_records

    checked, problems = verify_records(profile)
    for problem in problems:
        print(problem, file=sys.stderr)
    where = results_root() / (profile or "")
    verdict = f"{len(problems)} refused" if problems else "all sealed and whole"
    print(f"{checked} record(s) checked under {where}: {verdict}")
    return 1 if problems else 0


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
    from untrainable.reproduce import ReproduceError, ReproduceInterrupted, build_book, reproduce

    try:
        if args.command == "reproduce":
            from untrainable.runtime import threads_from_env

            try:
                check_device_present(args.device)
                threads_from_env()  # a bad UNTRAINABLE_THREADS fails now, not in the first notebook
            except ValueError as err:
                parser.exit(2, f"{parser.prog} reproduce: error: {err}\n")
            from untrainable.distributed import launched

            force = args.force
            if launched():
                if not train_together(args.profile, args.only, args.seeds, args.device, force, args.train_missing):
                    return 0
                force = False  # retrained just now, by every process
            reproduce(args.profile, only=args.only, force=force, device=args.device, book=not args.no_book,
                      seeds=args.seeds, train_missing=args.train_missing)
        elif args.command == "book":
            print(f"book built: {build_book(args.profile) / 'index.html'}")
        elif args.command == "verdicts":
            print(_verdicts(args.profile, args.csv), end="")
        elif args.command == "records":
            return _records(args.profile)
        else:
            return _data(args.action, args.names)
    except ReproduceInterrupted as err:
        print(f"{err}", file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:  # outside a notebook run: nothing was being written
        print(f"interrupted: {args.command} stopped; every record written so far is kept", file=sys.stderr)
        return INTERRUPTED
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
