"""Time one guided training step against an unguided step plus the guide's forward pass.

    python benchmarks/guidance_step.py --profile quick   # seconds: small models (CI)
    python benchmarks/guidance_step.py --profile full    # the full profile's models, batch 256

Variants: the authors' way (second target forward, guide with autograd, H K H centring), our
one-pass loss with the guide run each step, and with the guide's features or Gram matrices
precomputed once over the training set. The record is written to
results/<profile>/guidance_benchmark/guidance_benchmark.json; chapter 04 reads it. The logic lives
in untrainable.benchmarks_guidance so that the notebook and this script share it.
"""

from __future__ import annotations

import argparse

from untrainable import benchmarks_guidance as B


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("quick", "full", "paper"), default="quick")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default: 3 quick, 7 full)")
    args = parser.parse_args()
    record = B.run(args.profile, device=args.device, force=True, rounds=args.rounds)
    print(B.table(record).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"written: {B.record_file(args.profile)}")


if __name__ == "__main__":
    main()
