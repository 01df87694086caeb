"""Realism as a classifier two-sample test: can a fresh small CNN tell generated images from
real ones it has not seen?

Half of each set trains the classifier, the other half measures its accuracy. 0.5 means
the two sets cannot be told apart (a real-vs-real split scores about that); 1.0 means they
are trivially different. Unlike the domain FD (pooled features of a probe trained only to
segment clean images, blind to blur and contrast), the classifier learns whatever
difference there is, from pixels: what the eye notices first. Cheap enough for a CPU:
64 px, a few hundred images a side, a few epochs, seeded.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

CLASSIFIER_SIZE = 64  # images are resized to at most this (antialiased) before the classifier


class HighPass(nn.Module):
    """The image and its fine detail (the image minus its 3x3 box blur), as 6 channels: a
    fresh network trained for a few epochs picks up blur, noise and ringing much sooner."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        smooth = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return torch.cat([x, (x - smooth) * 4], dim=1)


def _classifier() -> nn.Module:
    def down(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]

    return nn.Sequential(HighPass(), nn.Conv2d(6, 16, 3, padding=1), nn.LeakyReLU(0.2), *down(16, 32),
                         *down(32, 64), *down(64, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))


def _prepare(images: torch.Tensor) -> torch.Tensor:
    images = images.detach().float().cpu()
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, S, S]; got {tuple(images.shape)}")
    if images.shape[-1] > CLASSIFIER_SIZE:
        images = F.interpolate(images, size=(CLASSIFIER_SIZE, CLASSIFIER_SIZE), mode="bilinear",
                               align_corners=False, antialias=True)
    return images


def train_fresh(make_net: Callable[[], nn.Module], inputs: torch.Tensor,
                loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int, epochs: int,
                batch: int, lr: float, flip: bool = True) -> nn.Module:
    """A fresh network (its initial weights from `seed`) trained with Adam on `inputs` in
    seeded random order, each batch left-right flipped at random (rooms and figures are
    symmetric; `flip` False for targets per pixel, which the flip would leave behind);
    `loss_of(outputs, picked indices)`. The realism test's classifier, the kinds metric's namer
    (metrics/kinds.py) and the parts metric's segmenter are trained so. The caller's random
    state is kept."""
    rng = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        net = make_net()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=rng)
            for lo in range(0, len(order), batch):
                pick = order[lo:lo + batch]
                x = inputs[pick]
                if flip:
                    flipped = torch.rand(len(x), generator=rng) < 0.5
                    x = torch.where(flipped.view(-1, 1, 1, 1), x.flip(-1), x)
                loss = loss_of(net(x), pick)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return net.eval()


def classifier_accuracy(real: torch.Tensor, fake: torch.Tensor, seed: int = 0, epochs: int = 8,
                        batch: int = 32, lr: float = 2e-3) -> float:
    """Held-out accuracy of a fresh CNN trained on the first half of each set (images
    [N, 3, S, S] in [-1, 1], the same N on both sides, N >= 8), tested on the second half."""
    real, fake = _prepare(real), _prepare(fake)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake sets must have the same shape; got {tuple(real.shape)}"
                         f" and {tuple(fake.shape)}")
    n = len(real)
    if n < 8:
        raise ValueError(f"the classifier test needs at least 8 images a side, got {n}")
    half = n // 2
    train_x = torch.cat([real[:half], fake[:half]])
    train_y = torch.cat([torch.ones(half), torch.zeros(half)])
    test_x = torch.cat([real[half:], fake[half:]])
    test_y = torch.cat([torch.ones(n - half), torch.zeros(n - half)])
    net = train_fresh(_classifier, train_x, lambda out, pick: F.binary_cross_entropy_with_logits(
        out[:, 0], train_y[pick]), seed, epochs, batch, lr)
    with torch.no_grad():
        logits = torch.cat([net(test_x[lo:lo + 256])[:, 0] for lo in range(0, len(test_x), 256)])
    return float(((logits > 0).float() == test_y).float().mean())


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (sigma in pixels, borders repeated): a spoiled copy of real images."""
    r = int(3 * sigma) + 1
    offs = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-offs ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(images)
    c = images.shape[1]
    x = F.pad(images, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def spoiled_real_report(size: int = 64, samples: int = 256, seed: int = 0) -> dict[str, dict[str, float]]:
    """Both realism measures on real rooms against real rooms that are blurred (1.5 px) or
    at half contrast: a measure that agrees with the eye must score both clearly worse than
    real. `python -m models.metrics.realism` prints it (README, Metrics)."""
    from models.data import make_dataset
    from models.metrics.fd import frechet_distance
    from models.metrics.probe import DEFAULT_PROBE, load_probe

    probe, _ = load_probe(DEFAULT_PROBE)
    data = make_dataset("rooms", size)
    rng = torch.Generator().manual_seed(seed + 1)
    reference, other = (torch.cat([data.sample(64, rng).images for _ in range(samples // 64)]) for _ in range(2))
    feats = lambda x: torch.cat([probe(x[i:i + 64])[1] for i in range(0, len(x), 64)])
    with torch.no_grad():
        ref_feats = feats(reference)
        report = {}
        for name, images in (("real", other), ("blurred 1.5 px", blur(other, 1.5)), ("half contrast", other * 0.5)):
            report[name] = {"domain_fd": frechet_distance(feats(images), ref_feats),
                            "realism_accuracy": classifier_accuracy(reference, images, seed=seed)}
    return report


if __name__ == "__main__":
    import json

    print(json.dumps(spoiled_real_report(), indent=2))
