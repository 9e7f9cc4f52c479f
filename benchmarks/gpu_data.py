"""CIFAR-10 for a lent GPU machine, which cannot download it and takes at most 64 MiB of files
along: the real CIFAR-2 (airplanes and automobiles, what chapter 8 trains on), losslessly packed,
and on the machine a CIFAR-10 folder built around it.

  python benchmarks/gpu_data.py pack ../shared/data .gpudata/cifar2.pack     # here: 24 MB
  python benchmarks/gpu_data.py unpack .gpudata/cifar2.pack /tmp/data         # there

The unpacked cifar-10-batches-py/ holds the real CIFAR-2 images at their own places with their own
labels, so chapter 8 (`load_dataset("cifar2")`) sees exactly the real data. Every other image is a
stand-in: a copy of a CIFAR-2 image under the real label of that place. CIFAR-10 runs on it (chapters
3 and 7) therefore do the same steps on tensors of the same shapes as on the real set, and time the
same, but their accuracies mean nothing. A file STAND_IN.txt beside the batches says so.
"""
from __future__ import annotations

import argparse
import lzma
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PER_BATCH = 10_000


def _deltas(images: np.ndarray) -> np.ndarray:
    """Each row's differences from its left neighbour (mod 256): lzma packs these a third smaller."""
    return np.diff(images.reshape(-1, 3, 32, 32), axis=3, prepend=np.uint8(0)).astype(np.uint8)


def pack(data_dir: str, out: str, preset: int = 6) -> None:
    from normlab.data import read_cifar10
    xtr, ytr, xte, yte = (t.numpy() for t in read_cifar10(Path(data_dir).resolve()))
    keep_tr, keep_te = np.flatnonzero(ytr <= 1), np.flatnonzero(yte <= 1)
    images = np.concatenate([xtr[keep_tr], xte[keep_te]])
    blob = {"train_labels": ytr.astype(np.uint8), "test_labels": yte.astype(np.uint8),
            "train_index": keep_tr.astype(np.int32), "test_index": keep_te.astype(np.int32),
            "deltas": lzma.compress(_deltas(images).tobytes(), preset=preset)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(pickle.dumps(blob))
    print(f"{out}: {Path(out).stat().st_size / 1e6:.1f} MB ({len(keep_tr)} train and {len(keep_te)} test images)")


def unpack(packed: str, data_dir: str) -> None:
    blob = pickle.loads(Path(packed).read_bytes())
    deltas = np.frombuffer(lzma.decompress(blob["deltas"]), np.uint8).reshape(-1, 3, 32, 32)
    images = np.cumsum(deltas, axis=3, dtype=np.uint8).reshape(-1, 3072)  # undoes _deltas (mod 256)
    n_train = len(blob["train_index"])
    folder = Path(data_dir) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for split, labels, index, real in (("train", blob["train_labels"], blob["train_index"], images[:n_train]),
                                       ("test", blob["test_labels"], blob["test_index"], images[n_train:])):
        x = real[np.arange(len(labels)) % len(real)]  # stand-ins: CIFAR-2 images, cycled
        x[index] = real                                # the real CIFAR-2 images at their own places
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        for i, name in enumerate(names):
            part = slice(i * PER_BATCH, (i + 1) * PER_BATCH)
            batch = {b"data": np.ascontiguousarray(x[part]), b"labels": labels[part].astype(int).tolist()}
            (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "STAND_IN.txt").write_text(
        "Made by benchmarks/gpu_data.py: real CIFAR-2 (labels 0 and 1) at their own places; every other image "
        "is a copy of a CIFAR-2 image under the real CIFAR-10 label of its place. For timings only.\n")
    print(f"{folder}: {len(blob['train_labels'])} train and {len(blob['test_labels'])} test images, "
          f"{len(images)} of them real")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)
    a = sub.add_parser("pack", help="CIFAR-2 out of a CIFAR-10 folder, into one file")
    a.add_argument("data_dir"), a.add_argument("out")
    a.add_argument("--preset", type=int, default=6, help="lzma's level, 0-9 (default 6: 24 MB in 30 s)")
    b = sub.add_parser("unpack", help="a CIFAR-10 folder (real CIFAR-2 + stand-ins) from that file")
    b.add_argument("packed"), b.add_argument("data_dir")
    args = p.parse_args()
    if args.verb == "pack":
        pack(args.data_dir, args.out, args.preset)
    else:
        unpack(args.packed, args.data_dir)


if __name__ == "__main__":
    main()
