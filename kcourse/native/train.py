"""The seeds' training loop, timed one epoch at a time: forward, loss, zero_grad, backward, step."""

import time

import numpy as np
import torch
import torch.nn.functional as F

from kcourse.native import models


class Reference:
    """A native PyTorch model with its optimizer and its data in memory, ready to train epochs.

    Args:
        model: the nn.Module.
        optimizer: its torch optimizer.
        batches: a function of the epoch returning an iterable of argument tuples;
            `step(*batch)` returns the loss.
        samples: what one epoch counts (samples, or corpus words for word2vec).
    """

    how = "eager (the seed's loop)"

    def __init__(self, model, optimizer, batches, loss, samples):
        self.model, self.optimizer, self.batches, self.loss, self.samples = model, optimizer, batches, loss, samples
        self.epochs = 0

    @property
    def params(self):  # BatchNorm's running statistics included, as Keras' count_params()
        buffers = sum(b.numel() for n, b in self.model.named_buffers() if n.endswith(("running_mean", "running_var")))
        return sum(p.numel() for p in self.model.parameters()) + buffers

    def epoch(self):
        """Train one epoch; returns (seconds, last loss)."""
        self.model.train()
        start = time.perf_counter()
        for batch in self.batches(self.epochs):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(*batch)
            loss.backward()
            self.optimizer.step()
        seconds = time.perf_counter() - start
        self.epochs += 1
        return seconds, float(loss.detach())


def _classifier(model, optimizer, x, y, batch_size, seed):
    x, y = torch.from_numpy(x), torch.from_numpy(y).long()
    generator = torch.Generator().manual_seed(seed)

    def batches(epoch):  # shuffled every epoch, as DataLoader(shuffle=True)
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch_size):
            index = order[i : i + batch_size]
            yield x[index], y[index]

    return Reference(model, optimizer, batches, lambda xb, yb: F.cross_entropy(model(xb), yb), len(x))


def reference(name, x=None, y=None, batch_size=64, seed=0, vocab_size=None, corpus=None, learning_rate=None,
              negatives=5, window=2, sample=0.0, sizes=None):
    """The native reference for one of the benchmark's models, on the given data.

    Args:
        name: "mnist-mlp", "mnist-cnn", "tiny-transformer", "unet", "vit" or "word2vec".
        x, y: the samples in Keras' layout (images (N, H, W, C), token ids (N, L)); labels (N,), or masks (N, H, W).
        vocab_size: for the transformer and word2vec.
        corpus: for word2vec, `(flat, sentence, counts)` as `kcourse.tasks.word2vec` makes them;
            the examples (kcourse.skipgram: grouped by centre, P = 2, K = 5) are drawn afresh every epoch, as the lab does.
        sizes: the model's sizes where the caller chooses them (the ViT's: image_shape,
            patch_size, num_layers, num_heads, hidden_dim, mlp_dim, as keras-hub's ViTBackbone).
    """
    torch.manual_seed(seed)
    if name in ("mnist-mlp", "mnist-cnn"):
        model = models.MLP() if name == "mnist-mlp" else models.VanillaCNN()
        images = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC -> NCHW, PyTorch's layout
        return _classifier(model, torch.optim.Adam(model.parameters(), learning_rate or 1e-3), images, y, batch_size, seed)
    if name == "unet":
        model = models.UNet(num_outputs=4, depth=3, base_filters=16, channels_in=x.shape[-1])
        images = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return _classifier(model, torch.optim.Adam(model.parameters(), learning_rate or 2e-3), images, y, batch_size, seed)
    if name == "vit":
        model = models.ViT(**(sizes or {}), num_classes=2)
        images = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        optimizer = torch.optim.AdamW(model.parameters(), learning_rate or 1e-3, weight_decay=0.05)  # the lab's
        return _classifier(model, optimizer, images, y, batch_size, seed)
    if name == "tiny-transformer":
        model = models.TinyTransformerClassifier(vocab_size, max_len=x.shape[1])
        optimizer = torch.optim.AdamW(model.parameters(), learning_rate or 1e-3, weight_decay=0.004)  # Keras' AdamW
        return _classifier(model, optimizer, x.astype("int64"), y, batch_size, seed)
    if name == "word2vec":
        from kcourse.skipgram import epoch_data

        flat, sentence, counts = corpus
        model = models.SkipGramNS(vocab_size, 50)
        rng = np.random.default_rng(seed)

        def batches(epoch):  # the lab's draw: pairs grouped by centre, negatives
            data = {k: torch.from_numpy(v.astype("int64")) for k, v in epoch_data(flat, sentence, counts, window, negatives, sample, rng).items()}
            for i in range(0, len(data["center"]), batch_size):
                yield data["center"][i : i + batch_size], data["pos"][i : i + batch_size], data["neg"][i : i + batch_size]

        optimizer = torch.optim.Adam(model.parameters(), learning_rate or 0.01)
        return Reference(model, optimizer, batches, model, len(flat))
    raise ValueError(f"no native reference for {name!r}")
