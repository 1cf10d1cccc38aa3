"""The shape simulator: seeded, consistent annotations at every level, and a task that needs context."""

import numpy as np
import pytest

from kcourse import shapes
from kcourse.shapes import CLASSES


@pytest.fixture(scope="module")
def data():
    return shapes.simulate(200, 48, noise=0.2, seed=3)


def test_same_seed_same_images_other_seed_other_images(data):
    again = shapes.simulate(200, 48, noise=0.2, seed=3)
    for name in ("images", "clean", "masks", "boxes", "labels"):
        np.testing.assert_array_equal(getattr(data, name), getattr(again, name))
    assert not np.array_equal(shapes.simulate(5, 48, seed=4).masks, data.masks[:5])


def test_shapes_and_types(data):
    assert data.images.shape == data.clean.shape == (200, 48, 48, 1) and data.images.dtype == np.float32
    assert data.masks.shape == (200, 48, 48) and data.masks.dtype == np.int32
    assert data.boxes.shape == (200, 3, 5) and data.labels.shape == (200, len(CLASSES) - 1)
    assert len(data[:10]) == 10 and data[[0, 2]].masks.shape == (2, 48, 48)


def test_every_class_appears_and_every_image_holds_a_shape(data):
    assert ((data.masks > 0).any((1, 2))).all()
    assert set(np.unique(data.masks)) == set(range(len(CLASSES)))
    fractions = np.bincount(data.masks.ravel(), minlength=4)[1:] / data.masks.size
    assert (fractions > 0.02).all(), fractions  # no class is rare


def test_labels_and_boxes_agree_with_the_masks(data):
    present = np.stack([(data.masks == c).any((1, 2)) for c in range(1, len(CLASSES))], 1)
    np.testing.assert_array_equal(data.labels, present.astype("float32"))
    for mask, boxes in zip(data.masks, data.boxes):
        used = boxes[boxes[:, 0] > 0]
        assert len(used) >= 1
        inside = np.zeros(mask.shape, bool)
        for cls, y0, x0, y1, x1 in used:
            window = mask[y0:y1, x0:x1] == cls
            # tight: the shape touches all four sides of its box
            assert window[0].any() and window[-1].any() and window[:, 0].any() and window[:, -1].any()
            inside[y0:y1, x0:x1] |= window
        np.testing.assert_array_equal(inside, mask > 0)  # every shape pixel lies in its class's box


def test_noise_level_and_psnr(data):
    residual = data.images - data.clean
    assert abs(residual.std() - 0.2) < 0.005 and abs(residual.mean()) < 0.005
    psnr = 10 * np.log10(1 / np.mean(residual**2))
    assert abs(psnr - 20 * np.log10(1 / 0.2)) < 0.2  # about 14 dB
    assert 0.0 <= data.clean.min() and data.clean.max() <= 1.0


def test_a_pixel_alone_does_not_tell_the_class(data):
    """Every class takes its grey levels from the same range: only the shape around a pixel tells
    a disc from a square or a triangle (the U-Net's receptive field, its context)."""
    levels = [data.clean[..., 0][data.masks == c] for c in range(len(CLASSES))]
    means = [v.mean() for v in levels]
    assert max(means) - min(means) < 0.08, means
    assert all(v.std() > 0.15 for v in levels[1:]), [v.std() for v in levels]
    # the best single threshold on the clean grey level tells two shape classes apart barely above
    # chance (balanced accuracy: 0.5 is chance)
    for a, b in [(1, 2), (1, 3), (2, 3)]:
        for t in np.quantile(np.concatenate([levels[a], levels[b]]), np.linspace(0.05, 0.95, 19)):
            balanced = 0.5 * ((levels[a] <= t).mean() + (levels[b] > t).mean())
            assert abs(balanced - 0.5) < 0.1, (a, b, t, balanced)


def test_any_size_odd_and_not_square():
    data = shapes.simulate(6, (37, 51), seed=1)
    assert data.images.shape == (6, 37, 51, 1) and data.masks.shape == (6, 37, 51)
    assert (data.masks > 0).any((1, 2)).all()
    with pytest.raises(ValueError, match="too small"):
        shapes.simulate(2, 5)


def test_box_masks_hold_every_shape_and_more(data):
    boxes = shapes.box_masks(data.boxes, data.size)
    shape_pixels = data.masks > 0
    assert (boxes[shape_pixels] == data.masks[shape_pixels]).mean() > 0.99  # the box covers its shape...
    assert (boxes > 0).sum() > 1.3 * shape_pixels.sum()  # ...and background around it: a noisy mask
