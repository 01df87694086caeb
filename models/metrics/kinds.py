"""Does a rooms generator draw the kind of object it was asked for? A fresh small CNN learns
to name an object's kind from crops of real rooms about each object's centre, and then names
the objects G draws at held-out real layouts: `kind_accuracy`, the share it names as the kind
the renderer put there. The same on the held-out real rooms is the ceiling
(`kind_accuracy_real`; crops shared by two objects keep it below 1).

G draws each real room's layout (centres, and kinds where G is told kinds, GeneratorConfig.
object_kinds). A generator not told kinds draws some object there, and its score is how often
that happens to be the real kind: chance is about 1/6, a little more where a kind's place in
the room gives it away (rugs low, windows high).

A fresh classifier, as the realism test's, not a network any D uses: rooms-cpu-kinds trains G
against the projected D's backbone's per-pixel verdict, so a measure on it would reward
fooling it (Kynkäänniemi et al. 2023). Nor the metrics probe: it names only 44 % of real
objects' pixels' kinds (session 24; the D's backbone 94 %), too weak a judge of kinds.
`python -m models.metrics.kinds CKPT [CKPT ...]` prints it per checkpoint.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CROP_FRACTION = 3 / 8  # a crop's side as a share of the image: 24 px at 64, a bed or rug fits


def object_crops(images: torch.Tensor, centers: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """[N, 3, c, c]: a square crop about each present object's centre (image units), the image's
    border repeated where a crop reaches past it; row-major over (image, object)."""
    size = images.shape[-1]
    c = max(8, round(size * CROP_FRACTION))
    padded = F.pad(images.float(), (c, c, c, c), mode="replicate")
    out = []
    for i, j in present.nonzero().tolist():
        x, y = (centers[i, j] * size).round().long().tolist()
        out.append(padded[i, :, y + c - c // 2:y + c - c // 2 + c, x + c - c // 2:x + c - c // 2 + c])
    return torch.stack(out) if out else images.new_zeros(0, 3, c, c)


def _namer(kinds: int) -> nn.Module:
    def down(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]

    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.LeakyReLU(0.2), *down(32, 48), *down(48, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, kinds))


def train_namer(crops: torch.Tensor, kinds: torch.Tensor, classes: int, seed: int = 0, epochs: int = 12,
                batch: int = 64, lr: float = 2e-3) -> nn.Module:
    """A fresh CNN that names the kind of each real crop (realism.train_fresh: seeded, flipped).
    Held-out real crops (session 24, 64 px): 0.62 named right after 6 epochs of 1,024 rooms'
    objects, 0.77 after 20, 0.84 after 10 of 3,072 rooms' (26 s on one core)."""
    from models.metrics.realism import train_fresh

    return train_fresh(lambda: _namer(classes), crops, lambda out, pick: F.cross_entropy(out, kinds[pick]),
                       seed, epochs, batch, lr)


@torch.no_grad()
def kind_accuracy(G, samples: int = 256, seed: int = 0, train_images: int = 3072,
                  batch: int = 32) -> dict[str, float | bool]:
    """{"kind_accuracy", "kind_accuracy_real", "kinds_told"}: the namer, trained on the objects
    of `train_images` real rooms, on the present objects of `samples` held-out real layouts
    and on G's objects at the same layouts."""
    from models.config import ROOM_KINDS
    from models.data import make_dataset
    from models.document.scene import DEFAULT_OBJECT_SIGMA

    if not G.config.objects or G.config.time is not None:
        raise ValueError("kind accuracy needs a rooms generator of still images (objects placed by a layout)")
    told = tuple(G.config.object_kinds) == ROOM_KINDS
    data = make_dataset("rooms", G.config.resolution, "cpu", n_objects=G.config.objects)
    train_rng = torch.Generator().manual_seed(seed + 101)
    crops, labels = [], []
    for lo in range(0, train_images, 128):
        real = data.sample(min(128, train_images - lo), train_rng)
        crops.append(object_crops(real.images, real.centers, real.present))
        labels.append(real.kinds[real.present])
    namer = train_namer(torch.cat(crops), torch.cat(labels), len(ROOM_KINDS), seed)
    rng = torch.Generator().manual_seed(seed)  # the real layouts: the same for every generator
    lat_rng = torch.Generator().manual_seed(seed + 7)
    hits, count = {"fake": 0, "real": 0}, 0
    for lo in range(0, samples, batch):
        real = data.sample(min(batch, samples - lo), rng)
        lat = G.sample_latents(real.centers.shape[0], lat_rng, G.const.device)
        lat.centers = real.centers.to(G.const.device)
        lat.sigmas = torch.full(real.centers.shape[:2], DEFAULT_OBJECT_SIGMA, device=G.const.device) \
            * real.present.float().to(G.const.device)
        if told:
            lat.kinds = real.kinds.to(G.const.device)
        fake = G(lat, noise_mode="const").float().cpu()
        asked = real.kinds[real.present]
        count += len(asked)
        for side, images in (("fake", fake), ("real", real.images.float())):
            named = namer(object_crops(images, real.centers, real.present)).argmax(dim=1)
            hits[side] += int((named == asked).sum())
    return {"kind_accuracy": hits["fake"] / max(1, count), "kind_accuracy_real": hits["real"] / max(1, count),
            "kinds_told": told}


@torch.no_grad()
def kind_row(G, layouts: int = 2, seed: int = 5) -> torch.Tensor:
    """[layouts x K, 3, S, S]: for each of `layouts` real rooms' layouts, its first object alone
    drawn as each kind in turn (bed, window, ... rug), all else the same: a generator told kinds
    draws K different objects, one not told them the same one K times."""
    from models.config import ROOM_KINDS
    from models.data import make_dataset
    from models.document.scene import DEFAULT_OBJECT_SIGMA

    real = make_dataset("rooms", G.config.resolution, "cpu", n_objects=G.config.objects).sample(
        layouts, torch.Generator().manual_seed(seed))
    first = real.present.float().argmax(dim=1)  # each layout's first present object
    alone = torch.zeros_like(real.present)
    alone[torch.arange(layouts), first] = True
    base = G.sample_latents(layouts, torch.Generator().manual_seed(seed + 1), G.const.device)
    rows = []
    for i in range(layouts):
        lat = base.rows(i, i + 1).repeat_each(len(ROOM_KINDS))
        lat.centers = real.centers[i:i + 1].repeat(len(ROOM_KINDS), 1, 1).to(G.const.device)
        lat.sigmas = (torch.full((len(ROOM_KINDS), G.config.objects), DEFAULT_OBJECT_SIGMA)
                      * alone[i:i + 1].float()).to(G.const.device)
        if tuple(G.config.object_kinds) == ROOM_KINDS:
            lat.kinds = torch.arange(len(ROOM_KINDS))[:, None].repeat(1, G.config.objects).to(G.const.device)
        rows.append(G(lat, noise_mode="const").float().cpu())
    return torch.cat(rows)


def main(argv: list[str] | None = None) -> int:
    from models.metrics.per_checkpoint import per_checkpoint_main

    return per_checkpoint_main(argv, __doc__.splitlines()[0], "kinds", kind_accuracy)


if __name__ == "__main__":
    raise SystemExit(main())
