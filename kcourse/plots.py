"""Figures the labs hand in: learning curves, confusion matrices, image grids."""

import matplotlib.pyplot as plt
import numpy as np


def learning_curves(histories, metrics=("loss", "accuracy")):
    """One panel per metric, train (solid) and validation (dashed) for each model.

    Args:
        histories: {model name: keras History.history dict}.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for i, (name, history) in enumerate(histories.items()):
            color = f"C{i}"
            if metric in history:
                epochs = np.arange(1, len(history[metric]) + 1)
                ax.plot(epochs, history[metric], color=color, label=f"{name} train")
            if f"val_{metric}" in history:
                epochs = np.arange(1, len(history[f"val_{metric}"]) + 1)
                ax.plot(epochs, history[f"val_{metric}"], "--", color=color, label=f"{name} val")
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
    return tidy(fig, *axes[0])


def tidy(fig, *axes):
    """The finish every line plot of kcourse has: a light grid, a small legend, a tight layout. Returns `fig`."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def confusion_matrix(y_true, y_pred, labels, title="confusion matrix"):
    """A confusion matrix with counts, drawn by scikit-learn."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(labels), 0.8 + 0.5 * len(labels)))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=range(len(labels)), display_labels=labels, ax=ax, colorbar=False
    )
    ax.set_title(title)
    fig.tight_layout()
    return fig


def image_grid(images, titles, ncols=8, cmap="gray"):
    """Images (N, H, W[, C]) in a grid, each with a short title."""
    n = max(len(images), 1)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.6 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        image = np.asarray(image)
        ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap=cmap)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
