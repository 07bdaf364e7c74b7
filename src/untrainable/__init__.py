"""untrainable: a reproducible companion to two papers on handing a network a better inductive bias.

* Guidance (Subramaniam et al., 2024): pull a target network's layers toward a frozen guide's
  representations with a CKA-based loss.
* Mimic (Ba & Caruana, 2014): train a shallow student to regress a deep teacher's logits.

Each concept of the book lives in one module: :mod:`untrainable.data`, :mod:`untrainable.models`,
:mod:`untrainable.train`, :mod:`untrainable.results`, :mod:`untrainable.experiments`, ...
"""

__version__ = "0.1.0"
