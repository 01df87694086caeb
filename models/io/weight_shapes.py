"""The shape of every weight a Generator of a config has, computed without building it.

A checkpoint's header lists its tensors and their shapes; comparing them with these
shapes before anything is allocated means a small file that claims a huge network is
refused in microseconds instead of taking the machine's memory (the header's byte counts
are checked against the file's size separately, in safetensors_io).

This mirrors Generator.__init__ (models/nets/generator.py, layers.py, motion.py);
tests/test_hostile_inputs.py checks it against the real state_dict of every shipped
architecture, so a change to the network that is not made here too fails there.
"""
from __future__ import annotations

from models.config import HIERARCHY_LEVELS, GeneratorConfig

Shape = tuple[int, ...]


def _linear(prefix: str, cin: int, cout: int) -> dict[str, Shape]:
    return {f"{prefix}.weight": (cout, cin), f"{prefix}.bias": (cout,)}


def _styled_conv(prefix: str, cin: int, cout: int, w_dim: int, mtm: bool, noise: bool) -> dict[str, Shape]:
    out = {f"{prefix}.weight": (cout, cin, 3, 3), f"{prefix}.bias": (cout,), **_linear(f"{prefix}.affine", w_dim, cin)}
    if mtm:
        out.update({f"{prefix}.offset_weight": (18, cin, 3, 3), f"{prefix}.offset_bias": (18,),
                    **_linear(f"{prefix}.offset_affine", w_dim, cin)})
    if noise:
        out[f"{prefix}.noise_strength"] = ()
    return out


def generator_shapes(config: GeneratorConfig) -> dict[str, Shape]:
    """{state_dict name: shape} of Generator(config), persistent entries only."""
    c = config.channels
    out: dict[str, Shape] = {"const": (1, c[4], 4, 4), "mapping.w_avg": (config.w_dim,)}
    dims = [config.z_dim] + [config.w_dim] * config.mapping_layers
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        out.update(_linear(f"mapping.net.{i}", a, b))
    time_channels = config.time["channels"] if config.time is not None else 0
    for r in config.resolutions():
        mtm = r in config.mtm
        index = 0
        if r != 4:
            out.update(_styled_conv(f"convs.{r}.0", c[r // 2], c[r], config.w_dim, mtm, config.noise))
            index = 1
        own_in = c[r] + (time_channels if r == 4 else 0)
        out.update(_styled_conv(f"convs.{r}.{index}", own_in, c[r], config.w_dim, mtm, config.noise))
        out.update({f"torgbs.{r}.weight": (3, c[r], 1, 1), f"torgbs.{r}.bias": (3,),
                    **_linear(f"torgbs.{r}.affine", config.w_dim, c[r])})
        if config.objects:
            out[f"heat_bias.{r}"] = (c[r],)
        if config.object_sprites and r >= config.objects_from:
            out.update({**_linear(f"sprites.{r}.coeffs", config.w_dim, c[r] * config.object_sprites),
                        f"sprites.{r}.gate": (c[r],)})
    if config.bones_from:
        out.update({f"bone_bias.{r}": (c[r],) for r in config.resolutions() if r >= config.bones_from})
    if config.hierarchical:
        hidden = 16
        for i, r in enumerate(HIERARCHY_LEVELS):
            cin = 1 + (hidden if i > 0 else 0)
            out.update({f"sel.{r}.process.weight": (hidden, cin, 3, 3), f"sel.{r}.process.bias": (hidden,),
                        f"sel.{r}.gamma.weight": (c[r], hidden, 1, 1), f"sel.{r}.gamma.bias": (c[r],),
                        f"sel.{r}.beta.weight": (c[r], hidden, 1, 1), f"sel.{r}.beta.bias": (c[r],)})
    if config.time is not None:
        t = config.time
        out.update(_linear("motion.smooth", t["kernel"] * t["motion_dim"], t["hidden"]))
        for name in ("amplitude", "frequency", "phase"):
            out.update(_linear(f"motion.{name}", t["hidden"], t["waves"]))
        out.update(_linear("motion.out", t["hidden"] + t["waves"], t["channels"]))
    if config.object_palette:
        k, c_last = config.object_palette, c[config.resolution]
        out.update({**_linear("palette.palette", config.w_dim, k * 3), "palette.choose.weight": (k + 2, c_last, 1, 1),
                    "palette.choose.bias": (k + 2,), "palette.strength": ()})
    if config.object_kinds:
        out["kind_vectors"] = (len(config.object_kinds), config.w_dim)
    return out
