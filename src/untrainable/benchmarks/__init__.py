"""Timing benchmarks whose records the book shows, each runnable from the command line.

* :mod:`untrainable.benchmarks.cka`: our linear CKA against the authors' float32 formulation and
  the two fixed-space ones, over a grid of sizes, and minibatch CKA over two ResNet-18s
  (``python -m untrainable.benchmarks.cka --profile full``; appendix 90 reads the record);
* :mod:`untrainable.benchmarks.guidance_step`: one guided training step against the unguided
  step plus a guide forward (``python -m untrainable.benchmarks.guidance_step --profile full``;
  chapters 04 and 05 read the record).

Records land in ``results/<profile>/cka_benchmark/`` and ``results/<profile>/guidance_benchmark/``.
"""
