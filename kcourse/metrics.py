"""The classification figures the photo labs report the same way (finetune, vit, clip)."""

import numpy as np


def classification(y_true, y_pred, num_classes, split="val"):
    """{"<split> accuracy", "macro F1"} of predicted classes (N,) against the true ones (N,).

    Macro F1 averages the F1 of every class, each weighing the same (a rare
    class counts as much as a common one); a class never predicted scores 0.
    """
    from sklearn.metrics import f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    f1 = f1_score(y_true, y_pred, average="macro", labels=range(num_classes), zero_division=0)
    return {f"{split} accuracy": float((y_pred == y_true).mean()), "macro F1": float(f1)}
