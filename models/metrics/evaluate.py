"""`steergan eval`: every metric of a generator, with MTM offsets on and off."""
from __future__ import annotations

import torch

from models.metrics.colour import colour_spread
from models.metrics.fd import frechet_distance
from models.metrics.realism import classifier_accuracy
from models.metrics.steering import block_report, co_move_ratio, style_swap_locality
from models.metrics.tracked import tracked_co_move, tracked_co_move_ceiling
from models.nets.generator import Generator

# Measured with the MTM offsets on and (where MTM exists) again off, as KEY_offsets_off.
KEYS = ("co_move_ratio", "co_move_tracked", "co_move_tracked_found", "co_move_outside_levels",
        "block_distortion_out", "block_locality", "block_inside_levels", "block_outside_levels",
        "block_locality_levels", "style_swap_locality", "domain_fd", "realism_accuracy", "colour_spread")
# Measured once: the procedural renderer's values of the same tests (the ceilings) and floors.
REFERENCE_KEYS = ("co_move_tracked_ceiling", "co_move_tracked_found_ceiling", "co_move_outside_levels_ceiling",
                  "domain_fd_real_floor", "realism_accuracy_real_floor", "colour_spread_real", "kind_accuracy_real",
                  "part_accuracy_real")
# Measured once, with the offsets on (rooms: does each object look like the kind asked for;
# figures: is each part of the figure where its skeleton puts it).
ONCE_KEYS = ("kind_accuracy", "part_accuracy")


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
def generated_images(G: Generator, count: int, rng: torch.Generator, offset_scale: float = 1.0,
                     batch: int = 32) -> torch.Tensor:
    return torch.cat([G(G.sample_latents(min(batch, count - lo), rng, G.const.device), offset_scale=offset_scale,
                        noise_mode="const").float().cpu() for lo in range(0, count, batch)])


def real_images(data, count: int, rng: torch.Generator, batch: int = 64) -> torch.Tensor:
    return torch.cat([data.sample(min(batch, count - lo), rng).images.float().cpu() for lo in range(0, count, batch)])


@torch.no_grad()
def evaluate(G: Generator, probe, samples: int = 256, fd_samples: int | None = None, seed: int = 0,
             dataset: str | None = None, realism_samples: int | None = None, log=lambda msg: None,
             realism_seeds: int = 1) -> dict:
    """All metrics; keys absent from a capability are None. Offsets-off variants where MTM exists.
    `realism_samples`: images a side for the classifier test (default max(samples, 16)).
    `realism_seeds` > 1: realism_accuracy (offsets on) is the mean of that many classifier
    tests, each on its own real and generated images and its own initialisation (one test
    at 256 a side varies by 0.05-0.07 from seed to seed, session 17); the single values go to
    realism_accuracy_each. 1: one test, as before."""
    if realism_seeds < 1:
        raise ValueError(f"realism_seeds must be at least 1, got {realism_seeds}")
    from models.data import make_dataset

    cfg = G.config
    fd_samples = fd_samples or max(samples, 512)
    data = make_dataset(dataset or real_dataset_name(G), cfg.resolution, G.const.device,
                        n_objects=max(1, cfg.objects))
    real_rng = torch.Generator().manual_seed(seed + 1)
    real_a = probe_features(probe, lambda b: data.sample(b, real_rng).images, fd_samples)
    real_b = probe_features(probe, lambda b: data.sample(b, real_rng).images, fd_samples)
    realism_samples = realism_samples or max(samples, 16)
    results: dict = {"samples": samples, "fd_samples": fd_samples, "realism_samples": realism_samples,
                     "domain_fd_real_floor": frechet_distance(real_a, real_b)}
    log("realism classifier, real against real")
    real_rng = torch.Generator().manual_seed(seed + 2)
    real_c = real_images(data, realism_samples, real_rng)
    results["realism_accuracy_real_floor"] = classifier_accuracy(real_c, real_images(data, realism_samples, real_rng),
                                                                 seed=seed)
    results["colour_spread_real"] = colour_spread(real_c)
    if cfg.objects or cfg.hierarchical:
        log("tracked co-move on the procedural renderer (the ceiling)")
        ceiling = tracked_co_move_ceiling(cfg.resolution, samples, seed, n_objects=max(1, cfg.objects),
                                          figures=not cfg.objects)
        results["co_move_tracked_ceiling"] = ceiling["tracked"]
        results["co_move_tracked_found_ceiling"] = ceiling["found"]
        results["co_move_outside_levels_ceiling"] = ceiling["outside_levels"]
    scales = {"": 1.0, "_offsets_off": 0.0} if cfg.mtm else {"": 1.0}
    for suffix, scale in scales.items():
        rng = lambda k: torch.Generator().manual_seed(seed * 1000 + k)  # the same draws on and off
        log(f"metrics with offset scale {scale}")
        if cfg.objects or cfg.hierarchical:
            results["co_move_ratio" + suffix] = co_move_ratio(G, probe, samples, rng(1), scale)
        if cfg.objects or cfg.hierarchical:
            tracked = tracked_co_move(G, samples, seed, scale)
            results["co_move_tracked" + suffix] = tracked["tracked"]
            results["co_move_tracked_found" + suffix] = tracked["found"]
            results["co_move_outside_levels" + suffix] = tracked["outside_levels"]
        if cfg.grid:
            block = block_report(G, samples, rng(2), scale)
            results["block_distortion_out" + suffix] = block["distortion_out"]
            results["block_locality" + suffix] = block["locality"]
            results["block_inside_levels" + suffix] = block["inside_levels"]
            results["block_outside_levels" + suffix] = block["outside_levels"]
            results["block_locality_levels" + suffix] = block["locality_levels"]
        if cfg.objects:
            results["style_swap_locality" + suffix] = style_swap_locality(G, samples, rng(3), scale)
        gen_rng = rng(4)
        fake = probe_features(probe, lambda b, gen_rng=gen_rng, scale=scale: G(
            G.sample_latents(b, gen_rng, G.const.device), offset_scale=scale, noise_mode="const"), fd_samples)
        results["domain_fd" + suffix] = frechet_distance(fake, real_a)
        log(f"realism classifier with offset scale {scale}")
        fake_images = generated_images(G, realism_samples, rng(5), scale)
        results["realism_accuracy" + suffix] = classifier_accuracy(real_c, fake_images, seed=seed)
        if suffix == "" and realism_seeds > 1:
            each = [results["realism_accuracy"]]
            for k in range(1, realism_seeds):
                log(f"realism classifier, test {k + 1} of {realism_seeds}")
                real_k = real_images(data, realism_samples, torch.Generator().manual_seed(seed + 2 + 7919 * k))
                fake_k = generated_images(G, realism_samples, rng(5 + 7919 * k), scale)
                each.append(classifier_accuracy(real_k, fake_k, seed=seed + k))
            results["realism_accuracy"] = sum(each) / len(each)
            results["realism_accuracy_each"] = each
        results["colour_spread" + suffix] = colour_spread(fake_images)
    if cfg.objects and cfg.time is None and (dataset or "rooms") == "rooms":  # once, offsets on: what it draws
        from models.metrics.kinds import kind_accuracy

        log("kind accuracy")
        kinds = kind_accuracy(G, samples=samples, seed=seed, train_images=min(3072, 12 * samples))
        results["kind_accuracy"], results["kind_accuracy_real"] = kinds["kind_accuracy"], kinds["kind_accuracy_real"]
    if cfg.hierarchical and cfg.time is None:  # once, offsets on: each part where the skeleton puts it
        from models.metrics.parts import part_accuracy

        log("part accuracy")
        parts = part_accuracy(G, samples=samples, seed=seed, train_images=min(2048, 8 * samples))
        results["part_accuracy"], results["part_accuracy_real"] = parts["part_accuracy"], parts["part_accuracy_real"]
    if cfg.time is not None:  # video: motion at 25 fps against the clips', and frame-rate consistency
        from models.metrics.temporal import temporal_metrics

        log("time metrics")
        results.update(temporal_metrics(G, videos=min(samples, 64), seed=seed))
    for key in KEYS + REFERENCE_KEYS + ONCE_KEYS:
        results.setdefault(key, None)
    for key in KEYS if cfg.mtm else ("domain_fd", "realism_accuracy", "colour_spread"):
        results.setdefault(key + "_offsets_off", None)
    return results
