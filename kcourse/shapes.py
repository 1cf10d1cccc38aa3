"""Simulated images for dense prediction: shapes on textured, noisy backgrounds.

A seeded simulator, cheap enough to make thousands of images in a second or
two, and one that a pixel alone cannot solve: every shape and the background
take their grey levels from the same range, and Gaussian noise hides the
edges, so the class of a pixel (disc, square or triangle) is only told by the
shape around it, i.e. by context.

    data = simulate(1000, size=64, seed=0)
    data.images   (N, H, W, 1) float32   noisy input
    data.clean    (N, H, W, 1) float32   the same image without noise (denoising target)
    data.masks    (N, H, W)    int32     per-pixel class: 0 background, 1 disc, 2 square, 3 triangle
    data.boxes    (N, S, 5)    int32     [class, y0, x0, y1, x1] per shape (y1, x1 excluded); class 0 = no shape
    data.labels   (N, 3)       float32   image-level labels: which classes the image holds (multi-hot)

Shapes never overlap, so that each box holds one shape; squares and
triangles are rotated at random, so no axis tells them apart.
"""

from dataclasses import dataclass, fields

import numpy as np

CLASSES = ("background", "disc", "square", "triangle")


@dataclass
class Shapes:
    """A batch of simulated images and their annotations at three levels of detail."""

    images: np.ndarray  # (N, H, W, 1) float32, noisy
    clean: np.ndarray  # (N, H, W, 1) float32
    masks: np.ndarray  # (N, H, W) int32, 0 = background
    boxes: np.ndarray  # (N, S, 5) int32, [class, y0, x0, y1, x1]; class 0 = unused slot
    labels: np.ndarray  # (N, len(CLASSES) - 1) float32, multi-hot
    noise: float = 0.0  # the standard deviation of the noise in `images`

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        """A subset: `data[:100]`, `data[order]`."""
        arrays = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "noise"}
        return Shapes(**arrays, noise=self.noise)

    @property
    def size(self):
        return self.images.shape[1:3]


def _size(size):
    height, width = (size, size) if np.isscalar(size) else size
    height, width = int(height), int(width)
    if height < 8 or width < 8:
        raise ValueError(f"images of {height}x{width} are too small for shapes: use 8x8 or more")
    return height, width


def simulate(n, size=64, *, noise=0.2, max_shapes=3, classes=CLASSES[1:], seed=0):
    """`n` images with 1 to `max_shapes` shapes each, and their masks, boxes and labels.

    Args:
        n: number of images.
        size: `H` (square images) or `(H, W)`, any size from 8.
        noise: standard deviation of the Gaussian noise added to the clean
            image (grey levels in [0, 1]); the PSNR of the noisy image is
            about `20 log10(1 / noise)` dB (14 dB for 0.2).
        max_shapes: the most shapes in one image (at least one in each).
        classes: the shapes to draw, among "disc", "square", "triangle"
            (all three by default; masks keep the numbers of CLASSES).
        seed: the same seed gives the same images.

    Returns:
        a `Shapes`.

    Background: 0.5 plus three plane waves of random direction, phase and
    frequency (0.5 to 3 periods across the image). Each shape is filled with
    a grey level 0.3 to 0.5 above or below the mean background under it,
    plus a faint linear gradient; its radius is 12 to 22% of the image's
    smaller side.
    """
    height, width = _size(size)
    unknown = [c for c in classes if c not in CLASSES[1:]]
    if unknown or not classes:
        raise ValueError(f"classes must be among {CLASSES[1:]}, received {tuple(classes)}")
    drawn = [CLASSES.index(c) for c in classes]
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype("float32")
    scale = min(height, width)

    # background texture: (N, H, W)
    angle, freq, phase, amplitude = (
        rng.uniform(low, high, (n, 3, 1, 1)).astype("float32")
        for low, high in ((0, 2 * np.pi), (0.5, 3.0), (0, 2 * np.pi), (0.02, 0.07))
    )
    freq *= 2 * np.pi / scale  # periods across the image -> radians per pixel
    clean = np.full((n, height, width), 0.5, "float32")
    for k in range(3):  # (N, H, W), one plane wave at a time
        a, f, p, amp = angle[:, k], freq[:, k], phase[:, k], amplitude[:, k]
        clean += amp * np.sin(f * (np.cos(a) * x + np.sin(a) * y) + p)

    masks = np.zeros((n, height, width), "int32")
    boxes = np.zeros((n, max_shapes, 5), "int32")
    for i in range(n):
        for slot in range(rng.integers(1, max_shapes + 1)):
            shape = _place(rng, y, x, scale, masks[i] > 0, drawn)
            if shape is None:  # no room left
                continue
            cls, inside = shape
            under = clean[i][inside].mean()
            contrast = rng.uniform(0.3, 0.5) * rng.choice([-1.0, 1.0])
            if not 0.05 <= under + contrast <= 0.95:
                contrast = -contrast
            gx, gy = rng.uniform(-0.1, 0.1, 2) / scale
            clean[i][inside] = under + contrast + (gx * x + gy * y)[inside]
            masks[i][inside] = cls
            rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
            boxes[i, slot] = cls, rows[0], cols[0], rows[-1] + 1, cols[-1] + 1

    clean = np.clip(clean, 0.0, 1.0)[..., None]  # (N, H, W, 1)
    images = clean + np.float32(noise) * rng.standard_normal(clean.shape, dtype="float32")
    labels = np.stack([(masks == c).any((1, 2)) for c in range(1, len(CLASSES))], axis=1).astype("float32")
    return Shapes(images, clean, masks, boxes, labels, noise=float(noise))


def _place(rng, y, x, scale, taken, drawn, tries=20):
    """(class, (H, W) bool mask) of one shape that does not touch `taken`, or None.

    The shape is drawn in a window around its centre only (the cost of a
    shape does not grow with the image).
    """
    height, width = taken.shape
    for _ in range(tries):
        cls = int(rng.choice(drawn))
        r = rng.uniform(0.12, 0.22) * scale
        cy, cx = rng.uniform(r, height - r), rng.uniform(r, width - r)
        theta = rng.uniform(0, 2 * np.pi)
        reach = int(np.ceil(1.3 * r)) + 2  # the triangle's circumradius, and a margin
        rows = slice(max(int(cy) - reach, 0), min(int(cy) + reach + 1, height))
        cols = slice(max(int(cx) - reach, 0), min(int(cx) + reach + 1, width))
        dy, dx = y[rows, cols] - cy, x[rows, cols] - cx
        if cls == 1:  # disc
            inside = dy**2 + dx**2 <= r**2
        elif cls == 2:  # square, rotated: |u|, |v| <= half side (area close to the disc's)
            u, v = np.cos(theta) * dx + np.sin(theta) * dy, -np.sin(theta) * dx + np.cos(theta) * dy
            half = 0.88 * r
            inside = (np.abs(u) <= half) & (np.abs(v) <= half)
        else:  # equilateral triangle, rotated: inside all three half-planes
            R = 1.3 * r  # circumradius
            inside = np.ones(dy.shape, bool)
            for k in range(3):
                a = theta + 2 * np.pi * k / 3  # outward normal of one side, at distance R / 2
                inside &= np.cos(a) * dx + np.sin(a) * dy <= R / 2
        near = taken[max(rows.start - 1, 0) : rows.stop + 1, max(cols.start - 1, 0) : cols.stop + 1]
        if inside.sum() >= 4 and not _touches(inside, near, rows.start > 0, cols.start > 0):
            full = np.zeros_like(taken)
            full[rows, cols] = inside
            return cls, full
    return None


def _touches(inside, near, top, left):
    """Whether `inside` (a window) or its 4-neighbours meet `near` (the window grown by one pixel where it can)."""
    grown = np.zeros((inside.shape[0] + 2, inside.shape[1] + 2), bool)
    for dy, dx in ((1, 1), (0, 1), (2, 1), (1, 0), (1, 2)):
        grown[dy : dy + inside.shape[0], dx : dx + inside.shape[1]] |= inside
    grown = grown[0 if top else 1 :, 0 if left else 1 :][: near.shape[0], : near.shape[1]]
    return bool((grown & near).any())


def box_masks(boxes, size):
    """Each box filled with its class: the box as a (noisy) mask, (N, H, W) int32.

    Larger boxes are drawn first, so that where two boxes overlap the smaller
    one (the more specific guess) wins.
    """
    height, width = _size(size)
    masks = np.zeros((len(boxes), height, width), "int32")
    for mask, image_boxes in zip(masks, boxes):
        used = [b for b in image_boxes if b[0] > 0]
        for cls, y0, x0, y1, x1 in sorted(used, key=lambda b: -(b[3] - b[1]) * (b[4] - b[2])):
            mask[y0:y1, x0:x1] = cls
    return masks
