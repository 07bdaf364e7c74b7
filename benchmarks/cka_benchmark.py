"""Time our linear CKA against the authors' float32 formulation and fixed feature/Gram-space ones.

    python benchmarks/cka_benchmark.py --profile quick   # seconds: a small grid (CI)
    python benchmarks/cka_benchmark.py --profile full    # the whole grid the book shows

The record is written to results/<profile>/cka_benchmark/cka_benchmark.json; the book's appendix
notebook (notebooks/90_cka_benchmark.ipynb) reads it. The logic lives in
untrainable.benchmarks_cka so that the notebook and this script share it.
"""

from __future__ import annotations

import argparse

from untrainable import benchmarks_cka as B


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    args = parser.parse_args()
    record = B.run(args.profile, device=args.device, force=True)  # the script always measures; the notebook loads
    print(B.cells_frame(record)[["n", "d", "space", "ours_s", "feature_s", "gram_s", "authors_s",
                                 "ours_vs_best_fixed", "worst_fixed_vs_ours", "authors_vs_ours",
                                 "ours_err", "authors_err"]].to_string(index=False))
    print(record["metrics"]["goals"])
    print(f"written: {B.record_file(args.profile)}")


if __name__ == "__main__":
    main()
