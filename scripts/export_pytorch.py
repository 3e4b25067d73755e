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

Two ways in:
  * torch-free: export_arrays(state, path, ...) takes a dict of numpy arrays, and
    `--from-npz FILE.npz` does the same from the command line (keys = state_dict keys);
  * with torch: `--arch vgg16_cifar` builds the CIFAR VGG-16 that matches pconv's vgg16_cifar
    (features.N + classifier), optionally loads `--checkpoint`, trains `--train-steps` on random
    data, prunes to the pattern library at `--prune-rate` (pconv's joint projection), fine-tunes
    `--finetune-steps` with the masks held, optionally sets BN statistics from `--calibrate-bn`
    random batches, and writes `--reference-batch` reference logits.

Pruning follows pconv exactly: score each 3x3 kernel by the energy of its best library pattern
(ties: lower pattern id), keep the top ceil(O*I/r) kernels (ties: lower flat index), zero the rest
and everything outside each kept kernel's pattern. The first conv (3 input channels) and convs
with one input channel per group are left dense, as in pconv's default layer selection.

Examples:
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
            for name, arr in reference.items():
                f.create_dataset(f"reference/{name}", data=np.asarray(arr, dtype=np.float32))


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
    ap.add_argument("--train-steps", type=int, default=0, help="dense SGD steps on random data")
    ap.add_argument("--finetune-steps", type=int, default=0,
                    help="masked SGD steps on random data after pruning")
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
                or a.calibrate_bn:
            ap.error("--from-npz has no model to run: no training, checkpoint or reference")
        with np.load(a.from_npz) as z:
            state = {k: z[k] for k in z.files}
        ids = prune_arrays(state, patterns, a.prune_rate) if a.prune_rate else None
        export_arrays(state, a.out, patterns, ids, infer=a.infer_patterns)
        print(f"wrote {a.out}: {len(state)} keys" + (f", {len(ids)} pruned convs" if ids else ""))
        return 0

    import torch

    torch.manual_seed(a.seed)
    arch = a.arch or "vgg16_cifar"
    model = make_cifar_vgg(a.width, a.num_classes)
    if a.checkpoint:
        load_checkpoint(model, a.checkpoint)
    train_random(model, a.train_steps, a.batch, a.lr, a.seed, a.image_size, a.num_classes)
    ids = None
    if a.prune_rate:
        state = numpy_state(model)
        ids = prune_arrays(state, patterns, a.prune_rate)
        with torch.no_grad():
            params = dict(model.named_parameters())
            for k in ids:
                params[k].copy_(torch.from_numpy(state[k]))
        train_random(model, a.finetune_steps, a.batch, a.lr, a.seed + 1, a.image_size,
                     a.num_classes, masks=torch_masks(model, ids, patterns))
    elif a.finetune_steps:
        ap.error("--finetune-steps needs --prune-rate")
    calibrate_bn(model, a.calibrate_bn, a.batch, a.seed + 2, a.image_size)
    ref = reference_logits(model, a.reference_batch, a.image_size, a.seed) \
        if a.reference_batch else None
    export_arrays(numpy_state(model), a.out, patterns, ids, infer=a.infer_patterns, reference=ref)
    print(f"wrote {a.out}: {arch} width {a.width}, {len(model.state_dict())} keys"
          + (f", {len(ids)} convs pruned to rate {a.prune_rate} with {len(patterns)} patterns"
             if ids else "")
          + (f", pattern ids inferred for {len(prunable_conv_keys(numpy_state(model)))} convs"
             if a.infer_patterns else "")
          + (f", reference logits of {a.reference_batch} inputs" if ref else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError, KeyError) as e:
        print(f"export_pytorch.py: {e}", file=sys.stderr)
        sys.exit(1)
