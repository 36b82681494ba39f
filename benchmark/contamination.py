"""Contamination check: does a generated set contain test images, or near-copies of them?

A set made by a synthesizer trained on another split (or a released set whose generator saw the
benchmark's test images) can hold test anomalies almost verbatim; a detector trained on it has
then seen its test data. Every generated set, ours and imported, is compared image by image with
the test split's images (good and anomalous), in the benchmark's own process (never inside a
synthesizer's forbid-reading guard: the test pixels come from the already loaded
:class:`benchmark.context.TestSet`).

Method (:data:`SETTINGS`), chosen because the usual perceptual hashes cannot tell MVTec images
apart: on bottle, a 64-bit DCT pHash puts two *different* bottle photos 2 bits apart and a JPEG
re-encoded copy up to 22 bits apart (``scripts/calibrate_contamination.py`` prints the figures).

1. Each image becomes greyscale at 64x64 (area resampling), smoothed with a Gaussian of sigma 1 px.
2. Candidates: for each generated image, the :data:`CANDIDATES` test images nearest by the
   log-magnitude of the low frequencies of the (Hann-windowed) Fourier transform, which a shift
   does not change. (On the calibration sets the original of every near-duplicate ranks first.)
3. Each candidate pair is aligned by phase correlation (sub-pixel, ``skimage``; shifts larger than
   4 px at 64 px, 6 % of the image, are not "slight" and are not applied) and compared by the
   normalised cross-correlation (NCC) of the central crop.
4. A generated image is a near-copy of its nearest test image when ``1 - NCC <= THRESHOLD`` *and*
   it is nearer to that test image than to every image the synthesizer was given (training normals
   and few-shot anomalies, compared the same way). The second condition keeps a set built on a
   training image that happens to look like a test image (the demo data's images are re-drawings of
   one template) from being flagged; a real copy of a test image is far from every training image.

Calibration (``scripts/calibrate_contamination.py``; figures in the README): near-duplicates are
every test image of MVTec AD bottle and MVTec LOCO juice_bottle upscaled 1-4x, shifted by up to 2 px
at the protocol size, JPEG re-encoded at quality 30-95 and brought back to the protocol size;
non-duplicates are every pair of different images of the same category (test-test, train
normal-test, few-shot anomaly-test). The threshold sits between the largest near-duplicate
distance and the smallest non-duplicate distance. A whole-image comparison does not catch a test
*defect* pasted onto another image; that limit is stated in the README.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.ndimage import shift as shift_image

from benchmark.results import ContaminationMatch, ContaminationResult

WORK_SIZE = 64
SIGMA = 1.0
SPECTRUM_HALF = 16  # the central 32x32 frequencies
CANDIDATES = 8
MAX_SHIFT = 4.0
MARGIN = 5
UPSAMPLE = 10
#: 1 - NCC at or below which a generated image is a near-copy of a test image (see the module doc).
THRESHOLD = 0.0009
SETTINGS = {
    "method": "aligned-ncc",
    "version": 1,
    "work_size": WORK_SIZE,
    "sigma": SIGMA,
    "candidate_spectrum": f"log magnitude of the central {2 * SPECTRUM_HALF}x{2 * SPECTRUM_HALF} frequencies",
    "candidates_per_image": CANDIDATES,
    "max_shift_px": MAX_SHIFT,
    "margin_px": MARGIN,
    "upsample_factor": UPSAMPLE,
    "threshold": THRESHOLD,
    "distance": "1 - normalised cross-correlation of the aligned central crops (greyscale, 64x64, Gaussian sigma 1)",
    "compared_with": "every test image of the category (good and anomalous), at the protocol size",
    "rule": "match when 1 - NCC <= threshold and the test image is nearer than every training image",
}


def prepare(images: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """[N, 64, 64] float greyscale, smoothed."""
    grey = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("L")
                                .resize((WORK_SIZE, WORK_SIZE), Image.BOX), dtype=np.float64) for image in images])
    return gaussian_filter(grey, sigma=(0, sigma, sigma)) if sigma else grey


def spectrum(prepared: np.ndarray) -> np.ndarray:
    """[N, D] shift-invariant description: log magnitude of the low frequencies of the windowed image."""
    window = np.hanning(prepared.shape[1])[:, None] * np.hanning(prepared.shape[2])[None]
    centred = (prepared - prepared.mean(axis=(1, 2), keepdims=True)) * window
    magnitude = np.abs(np.fft.fftshift(np.fft.fft2(centred), axes=(1, 2)))
    c, h = prepared.shape[1] // 2, SPECTRUM_HALF
    return np.log1p(magnitude[:, c - h:c + h, c - h:c + h]).reshape(len(prepared), -1)


def candidates(generated: np.ndarray, test: np.ndarray, k: int = CANDIDATES) -> np.ndarray:
    """[N, k] indices of the test images nearest to each generated image by :func:`spectrum` (prepared inputs)."""
    g, t = spectrum(generated), spectrum(test)
    squared = (g * g).sum(1)[:, None] - 2 * g @ t.T + (t * t).sum(1)[None]
    k = min(k, len(test))
    return np.argsort(squared, axis=1, kind="stable")[:, :k]


def pair_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - NCC of the central crops after aligning ``b`` onto ``a`` (prepared images)."""
    from skimage.registration import phase_cross_correlation

    offset, _, _ = phase_cross_correlation(a, b, upsample_factor=UPSAMPLE, normalization=None)
    if np.abs(offset).max() <= MAX_SHIFT:
        b = shift_image(b, offset, order=1, mode="nearest")
    x = a[MARGIN:-MARGIN, MARGIN:-MARGIN].ravel()
    y = b[MARGIN:-MARGIN, MARGIN:-MARGIN].ravel()
    x, y = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((x @ x) * (y @ y)))
    if denominator == 0.0:  # a flat image: identical only if the other is flat too
        return 0.0 if float(y @ y) == float(x @ x) == 0.0 else 1.0
    return float(1.0 - (x @ y) / denominator)


def nearest_pairs(generated: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each generated image: the candidate reference image nearest after alignment, and its distance."""
    fine_g, fine_t = prepare(generated), prepare(references)
    near = candidates(fine_g, fine_t)
    best = np.zeros(len(generated), dtype=np.int64)
    distance = np.full(len(generated), np.inf)
    for i, row in enumerate(near):
        for j in row:
            d = pair_distance(fine_t[j], fine_g[i])
            if d < distance[i]:
                best[i], distance[i] = j, d
    return best, distance


def check(generated: np.ndarray, generated_names: Sequence[str], test: np.ndarray,
          test_names: Sequence[str], training: np.ndarray | None = None) -> ContaminationResult:
    """Compare every generated image with every test image (and with the ``training`` images the synthesizer
    was given); matches are the generated images within the threshold of a test image and nearer to it than
    to any training image."""
    if len(generated) != len(generated_names) or len(test) != len(test_names):
        raise ValueError("one name per image is needed")
    best, distance = nearest_pairs(generated, test)
    if training is not None and len(training):
        _, to_training = nearest_pairs(generated, training)
    else:
        to_training = np.full(len(generated), np.inf)
    pairs = [ContaminationMatch(generated=generated_names[i], test=test_names[int(best[i])],
                                distance=round(float(distance[i]), 6),
                                nearest_training_distance=None if np.isinf(to_training[i]) else round(float(to_training[i]), 6))
             for i in range(len(generated))]
    matches = [pair for i, pair in enumerate(pairs) if distance[i] <= THRESHOLD and distance[i] < to_training[i]]
    closest = min(pairs, key=lambda pair: pair.distance) if pairs else None
    return ContaminationResult(settings=SETTINGS, threshold=THRESHOLD, n_generated=len(generated), n_test=len(test),
                               matches=matches, closest=closest)
