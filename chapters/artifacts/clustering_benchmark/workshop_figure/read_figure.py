"""Read the workshop's supervised-metrics violins: for each (data set, algorithm, panel) the median of the violin's
outline along the score axis. Run: python read_figure.py figure.png"""
import sys, json
import numpy as np
from PIL import Image

im = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(float)
H, W, _ = im.shape
COLOURS = {"K-Means": (230, 129, 147), "GMM": (158, 146, 65), "VI DP GMM": (67, 161, 120),
           "CLAM": (74, 158, 180), "CLAM-Dual": (199, 137, 229)}
# panels: zero of the score axis and pixels per unit, from the gridlines at -0.2, 0, ..., 1.2 (153.3 px per 0.2)
PANELS = {"rand": (1040.0, 0, 1500), "adjusted_rand": (2382.0, 0, 1500),
          "ami": (1040.0, 1500, H), "nmi": (2382.0, 1500, H)}
PX = (3300 - 2229) / 1.4
DATASETS = ["boston_housing_1993", "breast_cancer_wisconsin_1995", "ecoli_1996", "fashion_mnist_2017",
            "forest_covertype_1998", "image_segmentation_1990", "iris_1936", "kddcup_1999", "libras_movement_2009",
            "microarray_gcm_2001", "olivetti_faces_1992", "usps_digits_1994", "wine_1994", "yale_faces_1997", "zoo_1990"]

def coverage(region):
    """alpha of each colour at each pixel (p = a c + (1 - a) white), the best-fitting colour only."""
    dark = 255.0 - region
    best_a = np.zeros(region.shape[:2]); best_k = np.full(region.shape[:2], -1); best_r = np.full(region.shape[:2], np.inf)
    for k, c in enumerate(COLOURS.values()):
        v = 255.0 - np.array(c)
        a = np.clip((dark @ v) / (v @ v), 0, 1)
        r = np.linalg.norm(dark - a[..., None] * v, axis=-1)
        better = (r < best_r) & (a > 0.03) & (r < 25 + 40 * a)
        best_a[better], best_k[better], best_r[better] = a[better], k, r[better]
    return best_a, best_k


out = {}
TOPS = {"rand": 217.0, "adjusted_rand": 217.0, "ami": 1585.0, "nmi": 1585.0}
BLOCK, ROW = (1397 - 217) / 14, (271 - 217) / 4
for panel, (zero, _, _) in PANELS.items():
    x0 = int(zero - 0.4 * PX) + 4; x1 = int(zero + 1.25 * PX)
    out[panel] = {}
    for i, ds in enumerate(DATASETS):
        for j, name in enumerate(COLOURS):
            c = TOPS[panel] + i * BLOCK + j * ROW
            y0, y1 = int(round(c - 6)), int(round(c + 7))
            region = im[y0:y1, x0:x1]
            grey = np.abs(region - 204).max(-1) < 14
            a, k = coverage(region)
            w = (a * (k == j) * ~grey).sum(0)
            if w.sum() < 3:
                continue
            cdf = np.cumsum(w) / w.sum()
            xs = np.arange(len(w)) + x0
            q = lambda f: round(float((xs[np.searchsorted(cdf, f)] - zero) / PX), 2)
            mode = round(float((xs[np.argmax(np.convolve(w, np.ones(9) / 9, "same"))] - zero) / PX), 2)
            out[panel].setdefault(ds, {})[name] = {"q25": q(0.25), "median": q(0.5), "q75": q(0.75), "mode": mode,
                                                  "mass": round(float(w.sum()), 1)}
json.dump(out, sys.stdout, indent=1)
