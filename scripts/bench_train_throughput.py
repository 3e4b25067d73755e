#!/usr/bin/env python3
"""Training throughput of PyTorch on the same protocol as pconv-bench-train, for the ratio.

Same step (forward, cross-entropy, backward, SGD momentum 0.9 + weight decay 5e-4), same batch,
threads, warm-up and timing windows (median, min, max images/s), random data. Needs torch and
torchvision-free model definitions (below, matching src/core/architectures.cpp's resnet20 and
vgg16_cifar). Usage:

  scripts/bench_train_throughput.py [--arch resnet20 --arch vgg16_cifar] [--batch 128]
      [--threads 2] [--steps 5] [--windows 5] [--warmup 3] [--pconv build/bin/pconv-bench-train]
      [--torch-python PYTHON ...] [--json out.json]

With --pconv, runs pconv-bench-train with the same arguments first and prints both. Each
--torch-python interpreter (default: this one) measures its own torch install in the same run, so
several PyTorch versions can be compared; PyTorch 1.13.1, the version the throughput targets
were set with, installs beside a newer one with:

  python3 -m venv ~/torch113 && ~/torch113/bin/pip install torch==1.13.1 'numpy<2'
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def models(nn):
    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.sc = None
            if stride != 1 or cin != cout:
                self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.b2(self.c2(nn.functional.relu(self.b1(self.c1(x)))))
            return nn.functional.relu(y + (x if self.sc is None else self.sc(x)))

    def resnet20():
        layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
        cin = 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                layers.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
        return nn.Sequential(*layers)

    def vgg16_cifar():
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
        layers, cin = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, 1, 1, bias=True), nn.BatchNorm2d(v), nn.ReLU()]
                cin = v
        layers += [nn.Flatten(), nn.Linear(512, 10)]
        return nn.Sequential(*layers)

    return {"resnet20": resnet20, "vgg16_cifar": vgg16_cifar}


def bench_torch(arch, a):
    import torch
    from torch import nn
    torch.set_num_threads(a.threads)
    model = models(nn)[arch]()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, 32, 32)
    y = torch.randint(0, 10, (a.batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    rates = []
    for _ in range(a.windows):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        rates.append(a.steps * a.batch / (time.perf_counter() - t0))
    return {"arch": arch, "framework": "pytorch " + torch.__version__, "batch": a.batch, "threads": a.threads,
            "images_per_s": statistics.median(rates), "images_per_s_min": min(rates),
            "images_per_s_max": max(rates), "windows": rates,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", action="append")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--pconv", help="path to pconv-bench-train, run first with the same arguments")
    p.add_argument("--torch-python", action="append",
                   help="python interpreter whose torch to measure; repeatable (default: this one)")
    p.add_argument("--json")
    a = p.parse_args()
    pythons = a.torch_python or [sys.executable]
    archs = a.arch or ["vgg16_cifar", "resnet20"]
    out = []
    if a.pconv:
        cmd = [a.pconv, "--batch", str(a.batch), "--threads", str(a.threads), "--steps", str(a.steps),
               "--windows", str(a.windows), "--warmup", str(a.warmup), "--json", "/dev/stdout"]
        for arch in archs:
            cmd += ["--arch", arch]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        pconv = json.loads(res[res.index("["):])
        for r in pconv:
            r["framework"] = "pconv"
        out += pconv
    for python in pythons:
        for arch in archs:
            # A fresh process per architecture so peak RSS is per model.
            res = subprocess.run([python, __file__, "--_child", arch, json.dumps(vars(a))],
                                 check=True, capture_output=True, text=True).stdout
            out.append(json.loads(res))
    for r in out:
        print(f"{r['framework']:>14} {r['arch']:<12} {r['images_per_s']:8.1f} images/s "
              f"(min {r['images_per_s_min']:.1f}, max {r['images_per_s_max']:.1f}), peak RSS {r['peak_rss_mib']:.0f} MiB")
    for arch in archs:
        rs = {r["framework"]: r["images_per_s"] for r in out if r["arch"] == arch}
        for fw, rate in rs.items():
            if "pconv" in rs and fw != "pconv":
                print(f"{arch}: pconv / {fw} = {rs['pconv'] / rate:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--_child":
        print(json.dumps(bench_torch(sys.argv[2], argparse.Namespace(**json.loads(sys.argv[3])))))
    else:
        main()
