"""Build the demo dataset datasets/MFEAT from the UCI Multiple Features CSVs.

    python datasets/build_mfeat.py [--source DIR] [--out datasets/MFEAT]

DIR (default datasets/sources/uci-mfeat, bundled) holds mfeat-fou.csv (76 Fourier
coefficients of a digit's contour: the "text" embedding) and mfeat-pix.csv (240 pixel
averages 0..6: the "image" feature), plain or gzipped (.csv.gz). Row i of both files is the
same digit. Deterministic: the same CSVs give byte-identical pickles. Beside them it writes
thumbnails.npz ({digit as text: uint8 (200, 16, 15) pixel counts 0..6, in the gallery's
order}), which `zscrgan retrieve --show` draws.
"""
import argparse
import io
import os
import sys
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from zscrgan.data.dataset import load_dataset, save_dataset  # noqa: E402

# One unseen digit from each shape family (closed loops 0 6 8 9, straight strokes 1 4 7,
# open curves 2 3 5): each has seen relatives, yet the three are unlike each other.
# 6 and 9 stay seen together, because the contour Fourier magnitudes are rotation-invariant
# and hardly tell them apart.
UNSEEN = (3, 7, 8)
DIGITS = tuple(range(10))
PER_CLASS = 200
TEXT_DIM, IMAGE_DIM = 76, 240
SOURCE = os.path.join(ROOT, "datasets", "sources", "uci-mfeat")
THUMB_SHAPE = (16, 15)  # the pixel view: 16 rows of 15 pixels per digit
PIXEL_MAX = 6.0  # pixel averages are counts 0..6; /6 puts images in [0, 1] for the ReLU generator


def view_file(source, view):
    """The path of one view's CSV in `source`: mfeat-<view>.csv, else mfeat-<view>.csv.gz."""
    for name in (f"mfeat-{view}.csv", f"mfeat-{view}.csv.gz"):
        if os.path.isfile(os.path.join(source, name)):
            return os.path.join(source, name)
    sys.exit(f"{source}: neither mfeat-{view}.csv nor mfeat-{view}.csv.gz found")


def read_view(path, dim):
    """(features float64 (N, dim), labels int (N,)) from one CSV (.gz read as such); its
    first line is a header."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    if table.shape != (len(DIGITS) * PER_CLASS, dim + 1):
        sys.exit(f"{path}: expected {len(DIGITS) * PER_CLASS} rows of {dim} values + label, got {table.shape}")
    labels = table[:, -1].astype(int)
    return table[:, :-1], labels


def write_npz(path, arrays):
    """np.savez's format with fixed zip timestamps, so the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue(),
                        compress_type=zipfile.ZIP_DEFLATED)


def build(source, out):
    fou, fou_labels = read_view(view_file(source, "fou"), TEXT_DIM)
    pix, pix_labels = read_view(view_file(source, "pix"), IMAGE_DIM)
    if not np.array_equal(fou_labels, pix_labels):
        sys.exit("the two CSVs disagree on the labels: their rows are not the same digits")

    # Fourier magnitudes already lie in about [0, 0.8]: kept raw.
    text = {d: fou[fou_labels == d].astype(np.float32) for d in DIGITS}
    images = {d: (pix[pix_labels == d] / PIXEL_MAX).astype(np.float32) for d in DIGITS}
    for d in DIGITS:
        if len(text[d]) != PER_CLASS:
            sys.exit(f"digit {d} has {len(text[d])} rows, expected {PER_CLASS}")
    train_ids = [d for d in DIGITS if d not in UNSEEN]
    test_ids = sorted(UNSEEN)

    save_dataset(out, text, images, train_ids, test_ids)
    write_npz(os.path.join(out, "thumbnails.npz"),
              {str(d): pix[pix_labels == d].reshape(-1, *THUMB_SHAPE).astype(np.uint8) for d in DIGITS})
    ds = load_dataset(out)  # the writer's output must pass the project's own checks

    all_text = np.concatenate(list(ds.text.values()))
    all_images = np.concatenate(list(ds.images.values()))
    print(f"wrote {out}")
    print(f"  classes: digits {list(ds.text)}")
    print(f"  seen (trainids): {ds.train_ids}   unseen (testids): {ds.test_ids}")
    print(f"  per class: {PER_CLASS} texts x {ds.text_dim}, {PER_CLASS} images x {ds.image_dim} (float32)")
    print(f"  text range  [{all_text.min():.6g}, {all_text.max():.6g}]")
    print(f"  image range [{all_images.min():.6g}, {all_images.max():.6g}]")
    for fname in sorted(os.listdir(out)):
        if fname.endswith((".pkl", ".npz")):
            print(f"  {fname}: {os.path.getsize(os.path.join(out, fname))} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=SOURCE,
                        help="folder with mfeat-fou.csv and mfeat-pix.csv, plain or .gz (default: the bundled copy)")
    parser.add_argument("--out", default=os.path.join(ROOT, "datasets", "MFEAT"), help="dataset folder to write")
    args = parser.parse_args()
    build(args.source, args.out)


if __name__ == "__main__":
    main()
