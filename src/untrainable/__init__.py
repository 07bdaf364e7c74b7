"""untrainable: a reproducible companion to two papers on handing a network a better inductive bias.

* Guidance (Subramaniam et al., 2024): pull a target network's layers toward a frozen guide's
  representations with a CKA-based loss.
* Mimic (Ba & Caruana, 2014): train a shallow student to regress a deep teacher's logits.

Each concept of the book lives in one module: :mod:`untrainable.data`, :mod:`untrainable.models`,
:mod:`untrainable.train`, :mod:`untrainable.results`, :mod:`untrainable.experiments`, ...
"""

import os

__version__ = "0.1.0"

#: The widest instruction set oneDNN (PyTorch's CPU kernels for convolutions and bf16 matrix products)
#: may use, set before any kernel runs. Every committed bf16 record was trained on a CPU with AVX-512
#: bf16 but no AMX; on a CPU with AMX, oneDNN picks AMX tiles, which round differently, and the same
#: run drifts (a ResNet-18 guide: 23.9 % vs 22.8 % test accuracy after one epoch; a Deep FCN: 35.8 % vs
#: 35.2 %). Capped here, an AMX CPU retrains those records bit-identically, about 3x slower in bf16.
#: A reader's own ``ONEDNN_MAX_CPU_ISA`` wins; every record says which cap it trained under.
ONEDNN_ISA_CAP = "AVX512_CORE_BF16"
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", ONEDNN_ISA_CAP)
