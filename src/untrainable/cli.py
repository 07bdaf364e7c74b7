"""Command line: ``python -m untrainable reproduce|book|data``.

    python -m untrainable reproduce --profile quick           # every notebook, then the book
    python -m untrainable reproduce --profile full --only 01  # one chapter
    python -m untrainable data check                          # are the datasets where we look?
    python -m untrainable data download cifar10               # opt-in download (needs internet)
"""

from __future__ import annotations

import argparse
import sys

from untrainable.profiles import PROFILES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m untrainable", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reproduce", help="execute the notebooks in order with papermill, then build the book")
    r.add_argument("--profile", default="full", choices=PROFILES,
                   help="quick: minutes on a CPU; full: the book's reproduction (default); paper: the papers' scale")
    r.add_argument("--only", default="", help="comma-separated notebook prefixes, e.g. 01,04")
    r.add_argument("--force", action="store_true", help="retrain even when an identical record is stored")
    r.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, ...")
    r.add_argument("--seeds", default="", help="comma-separated seeds (default: each profile's own)")
    r.add_argument("--no-book", action="store_true", help="execute the notebooks only")

    b = sub.add_parser("book", help="build the book from the notebooks already executed for a profile")
    b.add_argument("--profile", default="full", choices=PROFILES)

    d = sub.add_parser("data", help="check or (with internet) download the datasets")
    d.add_argument("action", choices=("check", "download"))
    d.add_argument("names", nargs="*", default=["cifar10", "mnist", "tinyshakespeare"])
    return p


def _data(action: str, names: list[str]) -> int:
    from untrainable import data
    from untrainable.paths import data_root

    loaders = {"cifar10": lambda: data.load_cifar10(train=False), "mnist": lambda: data.load_mnist(train=False),
               "tinyshakespeare": data.load_tiny_shakespeare}
    status = 0
    for name in names:
        if name not in loaders:
            print(f"unknown dataset {name!r}: choose from {', '.join(loaders)}", file=sys.stderr)
            return 2
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from untrainable.reproduce import ReproduceError, build_book, reproduce

    try:
        if args.command == "reproduce":
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()] or None
            reproduce(args.profile, only=args.only.split(",") if args.only else None, force=args.force,
                      device=args.device, book=not args.no_book, seeds=seeds)
        elif args.command == "book":
            print(f"book built: {build_book(args.profile) / 'index.html'}")
        else:
            return _data(args.action, args.names)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
