#!/usr/bin/env python3
"""Write a PyTorch model's state_dict as the .h5 file that pconv-import reads (docs/import.md).

File layout (all at the root of the HDF5 file):
  <key>                     float32, one dataset per state_dict key ("features.0.weight");
                            num_batches_tracked is written as int64 (pconv-import ignores it)
  patterns                  int8 K x 3 x 3, 1 = kept position (only for pruned models)
  pattern_ids/<weight key>  int8 O x I per pruned 3x3 conv: pattern id per kernel, -1 = removed
  reference/input, reference/logits
                            optional: a fixed input and the model's eval-mode logits on it,
                            so the import can be checked against PyTorch (ignored by pconv-import)
  reference/test_top1, test_logits, test_labels, test_indices (+ dense_test_top1,
  pruned_test_top1)         with --data cifar10: PyTorch's eval-mode top-1 (float64), logits
                            (float32 N x 10), labels and indices (int) on the CIFAR-10 test set

Two ways in:
  * torch-free: export_arrays(state, path, ...) takes a dict of numpy arrays, and
    `--from-npz FILE.npz` does the same from the command line (keys = state_dict keys);
  * with torch: `--arch vgg16_cifar` builds the CIFAR VGG-16 that matches pconv's vgg16_cifar
    (features.N + classifier), optionally loads `--checkpoint`, trains `--train-steps` on random
    data or (`--data cifar10`) on CIFAR-10 exactly as pconv reads it (its decoded images, image
    order, normalisation and augmentation), prunes to the pattern library at `--prune-rate` (pconv's joint projection), fine-tunes
    `--finetune-steps` with the masks held, optionally sets BN statistics from `--calibrate-bn`
    random batches, writes `--reference-batch` reference logits and, with CIFAR-10, PyTorch's
    eval-mode test accuracy and logits (`--eval-limit` images, default all 10,000).

Pruning follows pconv exactly: score each 3x3 kernel by the energy of its best library pattern
(ties: lower pattern id), keep the top ceil(O*I/r) kernels (ties: lower flat index), zero the rest
and everything outside each kept kernel's pattern. The first conv (3 input channels) and convs
with one input channel per group are left dense, as in pconv's default layer selection.

Examples:
  python3 scripts/export_pytorch.py --arch vgg16_cifar --data cifar10 --threads 1 \\
      --train-steps 450 --warmup 30 --batch 64 --lr 0.05 --prune-rate 8.8 --patterns scp4 \\
      --finetune-steps 200 --reference-batch 8 --out vgg_torch.h5   (scripts/pytorch_roundtrip.sh)
  python3 scripts/export_pytorch.py --arch vgg16_cifar --width 0.25 --train-steps 20 \\
      --prune-rate 8 --finetune-steps 10 --reference-batch 4 --out vgg_pruned_torch.h5
  python3 scripts/export_pytorch.py --from-npz sd.npz --infer-patterns --patterns scp4 --out m.h5
"""

import argparse
import math
import sys

import numpy as np

# The paper's four SCPs (eq. 12): the centre plus three of its four neighbours, index r*3+c.
SCP4 = [[1, 3, 4, 5], [1, 3, 4, 7], [3, 4, 5, 7], [1, 4, 5, 7]]

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


# ---- torch-free core ------------------------------------------------------------------------

def library_array(position_sets):
    """K x 3 x 3 int8 masks from lists of kept positions (r*3+c)."""
    lib = np.zeros((len(position_sets), 9), dtype=np.int8)
    for k, pos in enumerate(position_sets):
        if len(set(pos)) != 4 or any(p < 0 or p > 8 for p in pos):
            raise ValueError(f"pattern {k} {pos}: a pattern keeps exactly 4 distinct positions 0..8")
        lib[k, list(pos)] = 1
    if len({tuple(r) for r in lib}) != len(lib):
        raise ValueError("the pattern library holds a pattern twice")
    return lib.reshape(-1, 3, 3)


def parse_patterns(spec):
    """'scp4', a .npy file (K x 3 x 3 or K x 9 of 0/1) or '1,3,4,5;1,3,4,7;...'."""
    if spec == "scp4":
        return library_array(SCP4)
    if spec.endswith(".npy"):
        arr = np.load(spec).astype(np.int8).reshape(-1, 9)
        return library_array([list(np.flatnonzero(r)) for r in arr])
    return library_array([[int(p) for p in s.split(",")] for s in spec.split(";") if s.strip()])


def kernel_budget(units, rate):
    """pconv's admm::kernel_budget: ceil(units / rate), at least 1 (slack for decimal rates)."""
    if not (rate >= 1 and math.isfinite(rate)):
        raise ValueError(f"pruning rate {rate} must be >= 1")
    q = units / rate
    return int(min(max(math.ceil(q - 1e-9 * q), 1), units))


def joint_pattern_ids(w, patterns, rate):
    """Per kernel of w (O, I, 3, 3) the id of its best pattern, or -1 for removed kernels."""
    o, i = w.shape[:2]
    k2 = w.reshape(o * i, 9).astype(np.float64) ** 2
    energy = k2 @ patterns.reshape(-1, 9).astype(np.float64).T  # (O*I, K)
    best = np.argmax(energy, axis=1)  # first maximum = lower id on ties
    score = energy[np.arange(o * i), best]
    keep = np.argsort(-score, kind="stable")[: kernel_budget(o * i, rate)]
    ids = np.full(o * i, -1, dtype=np.int8)
    ids[keep] = best[keep]
    return ids.reshape(o, i)


def pattern_mask(ids, patterns):
    """0/1 float32 mask of shape (O, I, 3, 3) for the given ids."""
    lib = patterns.reshape(-1, 9).astype(np.float32)
    flat = ids.reshape(-1)
    m = np.where(flat[:, None] >= 0, lib[np.maximum(flat, 0)], 0.0).astype(np.float32)
    return m.reshape(ids.shape + (3, 3))


def apply_pattern_ids(w, ids, patterns):
    return np.where(pattern_mask(ids, patterns) > 0, w, np.float32(0)).astype(w.dtype)


def infer_pattern_ids(key, w, patterns):
    """Ids from the zeros of an already pruned weight: an all-zero kernel is removed (-1); a kernel
    whose non-zeros fit several patterns takes the lowest id; one that fits none is an error."""
    o, i = w.shape[:2]
    nz = (w.reshape(o * i, 9) != 0).astype(np.int32)
    lib = patterns.reshape(-1, 9).astype(np.int32)
    outside = nz @ (1 - lib).T  # non-zeros outside each pattern, (O*I, K)
    fits = outside == 0
    ids = np.where(fits.any(axis=1), np.argmax(fits, axis=1), -2).astype(np.int8)
    ids[nz.sum(axis=1) == 0] = -1
    bad = np.flatnonzero(ids == -2)
    if bad.size:
        j = int(bad[0])
        raise ValueError(
            f"{key}: kernel ({j // i}, {j % i}) has non-zeros at positions "
            f"{list(np.flatnonzero(nz[j]))}, which no library pattern holds "
            f"({bad.size} such kernels); give --patterns that match the pruned model")
    return ids.reshape(o, i)


def prunable_conv_keys(state):
    """3x3 conv weights except those reading the RGB image (3 input channels: the first conv)
    and those with one input channel per group (depthwise), in key order."""
    return [k for k, v in state.items()
            if k.endswith(".weight") and np.ndim(v) == 4 and tuple(np.shape(v)[2:]) == (3, 3)
            and np.shape(v)[1] not in (1, 3)]


def prune_arrays(state, patterns, rate, keys=None):
    """Joint pattern + connectivity projection of the prunable convs of a numpy state dict, in
    place; returns {weight key: ids}."""
    ids = {}
    for k in keys if keys is not None else prunable_conv_keys(state):
        w = np.asarray(state[k], dtype=np.float32)
        ids[k] = joint_pattern_ids(w, patterns, rate)
        state[k] = apply_pattern_ids(w, ids[k], patterns)
    return ids


def export_arrays(state, path, patterns=None, pattern_ids=None, infer=False, reference=None):
    """Writes a state dict of numpy arrays (key -> array) as pconv-import's .h5. With `patterns`,
    `pattern_ids` (weight key -> O x I int8) is written as given, or, with infer=True, inferred
    from the zeros of the prunable convs. `reference`: {"input": ..., "logits": ...}."""
    import h5py

    if infer:
        if patterns is None:
            raise ValueError("inferring pattern ids needs a pattern library")
        pattern_ids = {k: infer_pattern_ids(k, np.asarray(state[k]), patterns)
                       for k in prunable_conv_keys(state)}
    if (patterns is None) != (pattern_ids is None):
        raise ValueError("patterns and pattern_ids go together (both or neither)")
    with h5py.File(path, "w") as f:
        for k, v in state.items():
            if "/" in k:
                raise ValueError(f"{k}: '/' in a key would become an HDF5 group")
            a = np.asarray(v)
            if k.endswith("num_batches_tracked"):
                f.create_dataset(k, data=a.astype(np.int64))
            else:
                f.create_dataset(k, data=a.astype(np.float32))
        if patterns is not None:
            f.create_dataset("patterns", data=np.asarray(patterns, dtype=np.int8).reshape(-1, 3, 3))
            for k, ids in pattern_ids.items():
                if k not in state:
                    raise ValueError(f"pattern_ids/{k}: no such weight in the state dict")
                want = tuple(np.shape(state[k])[:2])
                if tuple(np.shape(ids)) != want:
                    raise ValueError(f"pattern_ids/{k}: shape {np.shape(ids)}, weight needs {want}")
                f.create_dataset(f"pattern_ids/{k}", data=np.asarray(ids, dtype=np.int8))
        if reference is not None:
            for name, arr in reference.items():  # float32 unless given as float64 / integers
                a = np.asarray(arr)
                f.create_dataset(f"reference/{name}",
                                 data=a if a.dtype.kind in "iu" or a.dtype == np.float64
                                 else a.astype(np.float32))


# ---- torch ------------------------------------------------------------------------------------

def scaled(c, width):
    """pconv's channel scaling: max(1, lround(c * width))."""
    return max(1, int(math.floor(c * width + 0.5)))


def make_cifar_vgg(width=1.0, num_classes=10):
    """VGG-16 with batch norm for 32x32 inputs, named as pconv's vgg16_cifar."""
    import torch.nn as nn

    class CifarVGG(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c_in = [], 3
            for v in VGG16_CFG:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    c = scaled(v, width)
                    layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=True), nn.BatchNorm2d(c),
                               nn.ReLU(inplace=True)]
                    c_in = c
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Linear(c_in, num_classes)

        def forward(self, x):
            return self.classifier(self.features(x).flatten(1))

    return CifarVGG()


def torch_masks(model, pattern_ids, patterns):
    import torch

    params = dict(model.named_parameters())
    return {k: torch.from_numpy(pattern_mask(ids, patterns)).to(params[k].dtype) > 0
            for k, ids in pattern_ids.items()}


def train_random(model, steps, batch, lr, seed, image_size, num_classes, masks=None):
    """A few SGD steps on random data (exercises BN running statistics); with `masks`
    ({param name: bool tensor}), removed weights are held at exactly zero."""
    import torch
    import torch.nn.functional as F

    if steps <= 0:
        return
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    params = dict(model.named_parameters())
    model.train()
    for _ in range(steps):
        x = torch.randn(batch, 3, image_size, image_size, generator=g)
        y = torch.randint(0, num_classes, (batch,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if masks:
            with torch.no_grad():
                for k, m in masks.items():
                    params[k].masked_fill_(~m, 0.0)


def calibrate_bn(model, batches, batch, seed, image_size):
    """Sets every BN's running statistics to the exact average over `batches` random batches
    (PyTorch's momentum=None mode), so eval-mode activations keep their scale through a model
    trained for only a few steps."""
    import torch
    import torch.nn as nn

    if batches <= 0:
        return
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch, 3, image_size, image_size, generator=g))
    for m, mom in zip(bns, saved):
        m.momentum = mom


# ---- CIFAR-10, exactly as pconv reads it ---------------------------------------------------

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # pconv's defaults (docs/data.md)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]


def default_cache_dir():
    """pconv's cache: $PCONV_CACHE_DIR, else <repo>/.cache."""
    import os

    return os.environ.get("PCONV_CACHE_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache")


def read_pcd(path):
    """pconv's decoded cache (docs/data.md): (uint8 N x H x W x C RGB, int64 labels, classes)."""
    import struct

    with open(path, "rb") as f:
        buf = f.read()
    if buf[:8] != b"PCONVDC\0":
        raise ValueError(f"{path}: not a pconv decoded cache")
    version, h, w, c = struct.unpack_from("<4I", buf, 8)
    count, _files, _bytes, _fp = struct.unpack_from("<4Q", buf, 24)
    (ncls,) = struct.unpack_from("<I", buf, 56)
    off, classes = 60, []
    for _ in range(ncls):
        (n,) = struct.unpack_from("<I", buf, off)
        classes.append(buf[off + 4:off + 4 + n].decode())
        off += 4 + n
    labels = np.frombuffer(buf, dtype="<i4", count=count, offset=off).astype(np.int64)
    off += 4 * count
    pixels = np.frombuffer(buf, dtype=np.uint8, count=count * h * w * c, offset=off)
    if version != 1 or pixels.size != count * h * w * c:
        raise ValueError(f"{path}: version {version} or truncated")
    return pixels.reshape(count, h, w, c), labels, classes


def load_cifar10(split, cache_dir=None):
    """CIFAR-10 `split` ("train"/"test") as (uint8 N x 32 x 32 x 3 RGB, int64 labels), in the
    order pconv's data set uses: the JPEG folders sorted by class then file name (byte order),
    decoded by pconv (its decoded cache, so the pixels are OpenCV's, bit for bit); without that
    cache the JPEGs are decoded with PIL in the same order (kept as .npy under the cache); the
    binary release is read in file order, as pconv reads it."""
    import glob
    import os

    cache_dir = cache_dir or default_cache_dir()
    n_want = 50000 if split == "train" else 10000
    jpeg_dir = os.path.join(cache_dir, "cifar10-jpeg", split)
    if os.path.isdir(jpeg_dir):
        pcds = sorted(glob.glob(os.path.join(cache_dir, "decoded", f"cifar10-jpeg-{split}-*.pcd")),
                      key=os.path.getmtime, reverse=True)
        for pcd in pcds:
            x, y, classes = read_pcd(pcd)
            if len(y) == n_want and classes == CIFAR_CLASSES and x.shape[1:] == (32, 32, 3):
                return x, y
        npy = os.path.join(cache_dir, "torch-cifar10", f"{split}_images.npy")
        if os.path.exists(npy):
            return np.load(npy), np.load(npy.replace("_images", "_labels"))
        from PIL import Image

        xs, ys = [], []
        for c, name in enumerate(sorted(os.listdir(jpeg_dir))):
            files = sorted(f for f in os.listdir(os.path.join(jpeg_dir, name))
                           if f.lower().endswith((".jpg", ".jpeg", ".png")))
            for f in files:
                with Image.open(os.path.join(jpeg_dir, name, f)) as im:
                    xs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
                ys.append(c)
        x, y = np.stack(xs), np.asarray(ys, dtype=np.int64)
        os.makedirs(os.path.dirname(npy), exist_ok=True)
        np.save(npy, x)
        np.save(npy.replace("_images", "_labels"), y)
        return x, y
    bin_dir = os.path.join(cache_dir, "cifar-10-batches-bin")
    files = ([f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train"
             else ["test_batch.bin"])
    if all(os.path.exists(os.path.join(bin_dir, f)) for f in files):
        recs = np.concatenate([np.fromfile(os.path.join(bin_dir, f), dtype=np.uint8)
                               .reshape(-1, 3073) for f in files])
        return (recs[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(),
                recs[:, 0].astype(np.int64))
    raise OSError(f"CIFAR-10 not found in {cache_dir} (cifar10-jpeg/{split} or "
                  "cifar-10-batches-bin): run datasets/prepare_cifar10.sh first")


def normalize_cifar(x_hwc):
    """uint8 N x H x W x 3 -> float32 N x 3 x H x W, pconv's Normalizer bit for bit:
    v * (1 / (255 std)) + (-mean / std), every step in float32."""
    scale = np.float32(1) / (np.float32(255) * np.asarray(CIFAR_STD, np.float32))
    bias = -np.asarray(CIFAR_MEAN, np.float32) / np.asarray(CIFAR_STD, np.float32)
    x = x_hwc.astype(np.float32).transpose(0, 3, 1, 2)
    return (x * scale[None, :, None, None] + bias[None, :, None, None]).astype(np.float32)


def augment_cifar(x_hwc, rng, pad=4):
    """pconv's CIFAR augmentation: a 32x32 crop of the image zero-padded by `pad` (zero pixels
    before normalisation) and a horizontal flip with probability 1/2."""
    n, h, w, c = x_hwc.shape
    padded = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=np.uint8)
    padded[:, pad:pad + h, pad:pad + w] = x_hwc
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    flip = rng.random(n) < 0.5
    out = np.empty_like(x_hwc)
    for i in range(n):
        crop = padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop[:, ::-1] if flip[i] else crop
    return out


def train_cifar(model, steps, batch, lr, seed, data, masks=None, label="train", warmup=0):
    """SGD (momentum 0.9, weight decay 5e-4, nesterov) on CIFAR-10 with pconv's augmentation,
    linear warm-up over `warmup` steps then cosine decay to 0; with `masks`, removed weights are
    held at exactly zero after every step."""
    import time

    import torch
    import torch.nn.functional as F

    if steps <= 0:
        return
    x_all, y_all = data
    rng = np.random.default_rng(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4,
                          nesterov=True)
    params = dict(model.named_parameters())
    model.train()
    order, pos = rng.permutation(len(y_all)), 0
    t0, seen, loss_sum, correct = time.time(), 0, 0.0, 0
    for step in range(steps):
        if pos + batch > len(order):
            order, pos = rng.permutation(len(y_all)), 0
        idx = order[pos:pos + batch]
        pos += batch
        x = torch.from_numpy(normalize_cifar(augment_cifar(x_all[idx], rng)))
        y = torch.from_numpy(y_all[idx])
        cur = lr * (step + 1) / warmup if step < warmup else \
            0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = cur
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        if masks:
            with torch.no_grad():
                for k, m in masks.items():
                    params[k].masked_fill_(~m, 0.0)
        seen += len(idx)
        loss_sum += float(loss.detach()) * len(idx)
        correct += int((out.argmax(1) == y).sum())
        if (step + 1) % 50 == 0 or step + 1 == steps:
            dt = time.time() - t0
            print(f"{label} step {step + 1}/{steps}: lr {cur:.4f} loss {loss_sum / seen:.3f} "
                  f"train acc {correct / seen:.3f} ({seen / dt:.0f} img/s)", flush=True)
            t0, seen, loss_sum, correct = time.time(), 0, 0.0, 0


def eval_indices(n, limit):
    """All n images, or `limit` evenly spaced ones (the test set is sorted by class)."""
    if not limit or limit >= n:
        return np.arange(n)
    return (np.arange(limit) * n) // limit


def evaluate_cifar(model, data, batch=500, limit=0):
    """Eval-mode top-1 over the test set (or eval_indices(limit) of it); returns
    (top1, float32 logits N x C, indices)."""
    import torch

    x_all, y_all = data
    idx = eval_indices(len(y_all), limit)
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            outs.append(model(torch.from_numpy(normalize_cifar(x_all[idx[i:i + batch]])))
                        .numpy().astype(np.float32))
    logits = np.concatenate(outs)
    return float(np.mean(logits.argmax(1) == y_all[idx])), logits, idx


def reference_logits(model, batch, image_size, seed):
    import torch

    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(batch, 3, image_size, image_size)).astype(np.float32)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy().astype(np.float32)
    return {"input": x, "logits": logits}


def numpy_state(model):
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def load_checkpoint(model, path):
    import torch

    sd = torch.load(path, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--from-npz", help="torch-free: a .npz of state_dict arrays")
    src.add_argument("--arch", default=None, choices=["vgg16_cifar"],
                     help="build this PyTorch model (needs torch)")
    ap.add_argument("--checkpoint", help="load this state_dict (.pt) into --arch")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", choices=["random", "cifar10"], default="random",
                    help="train on random tensors (a smoke test) or on CIFAR-10 as pconv reads it")
    ap.add_argument("--cache-dir", default=None,
                    help="pconv's cache holding CIFAR-10 (default $PCONV_CACHE_DIR or <repo>/.cache)")
    ap.add_argument("--train-steps", type=int, default=0, help="dense SGD steps")
    ap.add_argument("--finetune-steps", type=int, default=0,
                    help="masked SGD steps after pruning")
    ap.add_argument("--warmup", type=int, default=0,
                    help="cifar10: linear lr warm-up steps of the dense training (then cosine)")
    ap.add_argument("--finetune-lr", type=float, default=None,
                    help="cifar10: peak lr of the fine-tuning (default --lr / 2)")
    ap.add_argument("--eval-limit", type=int, default=None,
                    help="cifar10: evaluate on the first N test images (default all 10,000; "
                    "0 = no evaluation)")
    ap.add_argument("--aux-eval-limit", type=int, default=2000,
                    help="cifar10: test images for the dense and just-pruned accuracies "
                    "(0 = all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--save-checkpoint", default=None,
                    help="save the dense state_dict (.pt) after dense training")
    ap.add_argument("--calibrate-bn", type=int, default=0, metavar="N",
                    help="before export, set BN running statistics from N random batches")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--patterns", default="scp4",
                    help="pattern library: scp4, FILE.npy or '1,3,4,5;1,3,4,7;...'")
    ap.add_argument("--prune-rate", type=float, default=0.0,
                    help="prune the prunable 3x3 convs to this connectivity rate (0 = no pruning)")
    ap.add_argument("--infer-patterns", action="store_true",
                    help="the model is already pruned: infer pattern ids from its zeros")
    ap.add_argument("--reference-batch", type=int, default=0,
                    help="write this many reference inputs and PyTorch logits (needs torch)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.prune_rate and a.infer_patterns:
        ap.error("--prune-rate prunes; --infer-patterns reads an already pruned model: pick one")
    patterns = parse_patterns(a.patterns) if (a.prune_rate or a.infer_patterns) else None

    if a.from_npz:
        if a.reference_batch or a.train_steps or a.finetune_steps or a.checkpoint \
                or a.calibrate_bn or a.data != "random":
            ap.error("--from-npz has no model to run: no training, checkpoint or reference")
        with np.load(a.from_npz) as z:
            state = {k: z[k] for k in z.files}
        ids = prune_arrays(state, patterns, a.prune_rate) if a.prune_rate else None
        export_arrays(state, a.out, patterns, ids, infer=a.infer_patterns)
        print(f"wrote {a.out}: {len(state)} keys" + (f", {len(ids)} pruned convs" if ids else ""))
        return 0

    import torch

    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    arch = a.arch or "vgg16_cifar"
    model = make_cifar_vgg(a.width, a.num_classes)
    if a.checkpoint:
        load_checkpoint(model, a.checkpoint)
    cifar = a.data == "cifar10"
    if cifar:
        if a.image_size != 32 or a.num_classes != 10:
            ap.error("--data cifar10 needs --image-size 32 and --num-classes 10")
        train_set, test_set = load_cifar10("train", a.cache_dir), load_cifar10("test", a.cache_dir)
        print(f"CIFAR-10: {len(train_set[1])} train, {len(test_set[1])} test images", flush=True)
        eval_limit = len(test_set[1]) if a.eval_limit is None else a.eval_limit
        train_cifar(model, a.train_steps, a.batch, a.lr, a.seed, train_set, label="dense",
                    warmup=a.warmup)
    else:
        train_random(model, a.train_steps, a.batch, a.lr, a.seed, a.image_size, a.num_classes)
    if a.save_checkpoint:
        torch.save(model.state_dict(), a.save_checkpoint)
    results = {}
    if cifar and eval_limit and (a.train_steps or a.checkpoint) and a.prune_rate:
        results["dense_test_top1"], _, _ = evaluate_cifar(model, test_set, limit=a.aux_eval_limit)
        print(f"dense model: test top-1 {results['dense_test_top1']:.4f} "
              f"({min(a.aux_eval_limit or 10**9, len(test_set[1]))} images, eval mode)", flush=True)
    ids = None
    if a.prune_rate:
        state = numpy_state(model)
        ids = prune_arrays(state, patterns, a.prune_rate)
        with torch.no_grad():
            params = dict(model.named_parameters())
            for k in ids:
                params[k].copy_(torch.from_numpy(state[k]))
        masks = torch_masks(model, ids, patterns)
        if cifar:
            if eval_limit:
                results["pruned_test_top1"], _, _ = evaluate_cifar(model, test_set,
                                                                    limit=a.aux_eval_limit)
                print(f"pruned, before fine-tuning: test top-1 {results['pruned_test_top1']:.4f}",
                      flush=True)
            train_cifar(model, a.finetune_steps, a.batch,
                        a.finetune_lr if a.finetune_lr is not None else a.lr / 2, a.seed + 1,
                        train_set, masks=masks, label="finetune")
        else:
            train_random(model, a.finetune_steps, a.batch, a.lr, a.seed + 1, a.image_size,
                         a.num_classes, masks=masks)
    elif a.finetune_steps:
        ap.error("--finetune-steps needs --prune-rate")
    calibrate_bn(model, a.calibrate_bn, a.batch, a.seed + 2, a.image_size)
    ref = reference_logits(model, a.reference_batch, a.image_size, a.seed) \
        if a.reference_batch else None
    if cifar and eval_limit:
        top1, logits, idx = evaluate_cifar(model, test_set, limit=eval_limit)
        ref = dict(ref or {})
        ref.update({"test_top1": np.float64(top1), "test_logits": logits,
                    "test_labels": test_set[1][idx].astype(np.int32),
                    "test_indices": idx.astype(np.int64)})
        ref.update({k: np.float64(v) for k, v in results.items()})
        print(f"PyTorch test top-1 {top1:.4f} on {len(idx)} CIFAR-10 test images "
              "(eval mode, the exported model)", flush=True)
    export_arrays(numpy_state(model), a.out, patterns, ids, infer=a.infer_patterns, reference=ref)
    print(f"wrote {a.out}: {arch} width {a.width}, {len(model.state_dict())} keys"
          + (f", {len(ids)} convs pruned to rate {a.prune_rate} with {len(patterns)} patterns"
             if ids else "")
          + (f", pattern ids inferred for {len(prunable_conv_keys(numpy_state(model)))} convs"
             if a.infer_patterns else "")
          + (f", reference logits of {a.reference_batch} inputs" if a.reference_batch else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError, KeyError) as e:
        print(f"export_pytorch.py: {e}", file=sys.stderr)
        sys.exit(1)
