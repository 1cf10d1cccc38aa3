"""Native PyTorch references: the course's own PyTorch code for each lab model, at the labs' sizes.

The benchmark (`python -m kcourse.benchmark`) times each kcourse model on the
three Keras backends against these: the MLP and the vanilla CNN of TP3, the
tiny Transformer classifier and the skip-gram with negative sampling of TP4,
written as the seeds write them (nn.Module, a plain training loop: forward,
loss, zero_grad, backward, step) with exactly the parameters of the Keras
models (checked by tests/test_benchmark.py). Nothing else in kcourse imports
torch directly: this is where a backend-specific fact is the point.
"""

from kcourse.native.models import MLP, SkipGramNS, TinyTransformerClassifier, VanillaCNN
from kcourse.native.train import Reference, reference

__all__ = ["MLP", "VanillaCNN", "TinyTransformerClassifier", "SkipGramNS", "Reference", "reference"]
