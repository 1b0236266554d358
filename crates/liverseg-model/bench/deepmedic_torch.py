#!/usr/bin/env python3
"""PyTorch reference of liverseg's DeepMedic (crates/liverseg-model/src/network.rs),
for same-run timing comparisons by `cargo bench -p liverseg-model`.

Reads the network config as JSON (the same file a liverseg model carries), builds
the same layers (BN -> PReLU -> 3x3x3 valid conv, residuals, repeat up-sampling,
1x1x1 FC, dropout), and prints one JSON line with the mean training-step and
inference times. CPU (threads = torch default) or, with --device cuda, the GPU.

usage: deepmedic_torch.py CONFIG.json --batch 16 --patch 15 --steps 3 --infer-patch 60 [--device cuda]
"""
import argparse, json, sys, time

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, cin, cout, k, pre, dropout):
        super().__init__()
        self.norm = nn.BatchNorm3d(cin) if pre else None
        self.act = nn.PReLU(cin) if pre else None
        self.drop = nn.Dropout(dropout) if dropout > 0 else None
        self.conv = nn.Conv3d(cin, cout, k)

    def forward(self, x):
        if self.norm is not None:
            x = self.act(self.norm(x))
        if self.drop is not None:
            x = self.drop(x)
        return self.conv(x)


class Pathway(nn.Module):
    def __init__(self, features, k, residual, factor):
        super().__init__()
        cin, layers = 1, []
        for i, c in enumerate(features):
            layers.append(Block(cin, c, k, i > 0, 0.0))
            cin = c
        self.layers = nn.ModuleList(layers)
        self.residual = [r - 1 for r in residual]
        self.factor = factor

    def forward(self, x):
        outs = []
        for i, layer in enumerate(self.layers):
            y = layer(x)
            if i in self.residual and i >= 2:
                e = outs[i - 2]
                o = (e.shape[2] - y.shape[2]) // 2
                e = e[:, : y.shape[1], o : o + y.shape[2], o : o + y.shape[3], o : o + y.shape[4]]
                if e.shape[1] < y.shape[1]:
                    pad = torch.zeros(y.shape[0], y.shape[1] - e.shape[1], *y.shape[2:], device=y.device)
                    e = torch.cat([e, pad], 1)
                y = y + e
            outs.append(y)
            x = y
        f = self.factor
        if f > 1:
            x = x.repeat_interleave(f, 2).repeat_interleave(f, 3).repeat_interleave(f, 4)
        return x


class DeepMedic(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        k = cfg["kernel"]
        self.pathways = nn.ModuleList(Pathway(p["features"], k, cfg["residual"], p["factor"]) for p in cfg["pathways"])
        cin = sum(p["features"][-1] for p in cfg["pathways"])
        fc = []
        for w in cfg["fc"]:
            fc.append(Block(cin, w, 1, True, cfg["dropout"]))
            cin = w
        self.fc = nn.ModuleList(fc)
        self.classifier = Block(cin, 1, 1, True, cfg["dropout"])

    def forward(self, inputs):
        x = torch.cat([p(i) for p, i in zip(self.pathways, inputs)], 1)
        for layer in self.fc:
            x = layer(x)
        return self.classifier(x)


def inputs_for(cfg, patch, batch):
    rf = lambda p: 1 + len(p["features"]) * (cfg["kernel"] - 1)
    return [torch.randn(batch, 1, patch // p["factor"] + rf(p) - 1, *(2 * [patch // p["factor"] + rf(p) - 1])) * 0.1 for p in cfg["pathways"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", "--segment", type=int, default=15)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--infer-patch", "--infer-segment", type=int, default=60)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    # GPU kernels run asynchronously: wait for them before reading the clock.
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    cfg = json.load(open(a.config))
    net = DeepMedic(cfg).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.007, momentum=0.6, nesterov=True)
    lossf = nn.BCEWithLogitsLoss()
    x = [i.to(dev) for i in inputs_for(cfg, a.patch, a.batch)]
    t = (torch.rand(a.batch, 1, a.patch, a.patch, a.patch) > 0.5).float().to(dev)
    net.train()
    times = []
    for i in range(a.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = lossf(net(x), t)
        loss.backward()
        opt.step()
        sync()
        if i > 0:  # first step warms up allocators
            times.append(time.perf_counter() - t0)
    net.eval()
    xi = [i.to(dev) for i in inputs_for(cfg, a.infer_patch, 1)]
    with torch.no_grad():
        net(xi)
        sync()
        t0 = time.perf_counter()
        net(xi)
        sync()
        infer = time.perf_counter() - t0
    print(json.dumps({"torch": torch.__version__, "device": str(dev), "threads": torch.get_num_threads(), "train_step_s": sum(times) / len(times),
                      "infer_tile_s": infer, "infer_voxels_per_s": a.infer_patch ** 3 / infer}))


if __name__ == "__main__":
    sys.exit(main())
