"""`steergan eval`: every metric of a generator, with MTM offsets on and off."""
from __future__ import annotations

import torch

from ..generator import Generator
from .fd import frechet_distance
from .steering import block_metrics, co_move_ratio, style_swap_locality

KEYS = ("co_move_ratio", "block_distortion_out", "block_locality", "style_swap_locality", "domain_fd")


@torch.no_grad()
def probe_features(probe, images_fn, samples: int, batch: int = 32) -> torch.Tensor:
    feats = []
    for start in range(0, samples, batch):
        feats.append(probe(images_fn(min(batch, samples - start)))[1])
    return torch.cat(feats)


def real_dataset_name(G: Generator) -> str:
    world = "figures" if G.config.hierarchical else "rooms"
    # A video generator is compared with frames of clips (at random times), what it learned.
    return world if G.config.time is None else f"clips-{world}"


@torch.no_grad()
def evaluate(G: Generator, probe, samples: int = 256, fd_samples: int | None = None, seed: int = 0,
             dataset: str | None = None, log=lambda msg: None) -> dict:
    """All metrics; keys absent from a capability are None. Offsets-off variants where MTM exists."""
    from ..data import make_dataset

    cfg = G.config
    fd_samples = fd_samples or max(samples, 512)
    data = make_dataset(dataset or real_dataset_name(G), cfg.resolution, G.const.device,
                        n_objects=max(1, cfg.objects))
    real_rng = torch.Generator().manual_seed(seed + 1)
    real_a = probe_features(probe, lambda b: data.sample(b, real_rng).images, fd_samples)
    real_b = probe_features(probe, lambda b: data.sample(b, real_rng).images, fd_samples)
    results: dict = {"samples": samples, "fd_samples": fd_samples, "domain_fd_real_floor": frechet_distance(real_a, real_b)}
    scales = {"": 1.0, "_offsets_off": 0.0} if cfg.mtm else {"": 1.0}
    for suffix, scale in scales.items():
        rng = lambda k: torch.Generator().manual_seed(seed * 1000 + k)  # noqa: E731  same draws on and off
        log(f"metrics with offset scale {scale}")
        if cfg.objects or cfg.hierarchical:
            results["co_move_ratio" + suffix] = co_move_ratio(G, probe, samples, rng(1), scale)
        if cfg.grid:
            out, locality = block_metrics(G, samples, rng(2), scale)
            results["block_distortion_out" + suffix] = out
            results["block_locality" + suffix] = locality
        if cfg.objects:
            results["style_swap_locality" + suffix] = style_swap_locality(G, samples, rng(3), scale)
        gen_rng = rng(4)
        fake = probe_features(probe, lambda b: G(G.sample_latents(b, gen_rng, G.const.device),
                                                 offset_scale=scale, noise_mode="const"), fd_samples)
        results["domain_fd" + suffix] = frechet_distance(fake, real_a)
    if cfg.time is not None:  # video: motion at 25 fps against the clips', and frame-rate consistency
        from .temporal import temporal_metrics

        log("time metrics")
        results.update(temporal_metrics(G, videos=min(samples, 64), seed=seed))
    for key in KEYS:
        results.setdefault(key, None)
    for key in KEYS if cfg.mtm else ("domain_fd",):
        results.setdefault(key + "_offsets_off", None)
    return results
