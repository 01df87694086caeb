"""The training step's number format (models/training/precision.py): what "auto" picks, and
that a bf16 step computes what the float32 step computes."""
import pytest
import torch

from models.training.configs import training_config
from models.training.precision import autocast, cpu_has_native_bf16, resolve_precision
from models.training.trainer import Trainer


def _cpuinfo(folder, flags: str):
    folder.mkdir()
    p = folder / "cpuinfo"
    p.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\n")
    return str(p)


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    assert cpu_has_native_bf16(_cpuinfo(tmp_path / "a", "fpu sse avx2 avx512f amx_bf16 amx_tile"))
    assert cpu_has_native_bf16(_cpuinfo(tmp_path / "b", "fpu avx512f avx512_bf16"))
    assert not cpu_has_native_bf16(_cpuinfo(tmp_path / "c", "fpu sse avx2 avx512f avx512bw"))
    assert not cpu_has_native_bf16(str(tmp_path / "no-such-file"))


def test_resolve_precision():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("fp32", cuda) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cuda) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "fp32")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu)


def test_bf16_autocast_runs_convolutions_in_bf16():
    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast("bf16", torch.device("cpu")):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
    with autocast("fp32", torch.device("cpu")):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.float32


def _delta(before: dict, module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([(p.detach().float() - before[n]).flatten() for n, p in module.named_parameters()])


@pytest.mark.parametrize("config", ["tiny-rooms-projected", "tiny-rooms-layout"])
def test_a_bf16_step_computes_what_the_fp32_step_computes(config, tmp_path):
    """The same first step (same weights, latents, real images and augmentation) in both
    formats: the losses agree to 5 % and the updates of G and D point the same way (Adam's
    first step is about lr x sign(gradient), so the cosine counts agreeing signs; a bf16 step
    that dropped a loss term or lost the gradient would fall far below 0.8)."""
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        t = Trainer(training_config(config), tmp_path / precision, device="cpu", precision=precision)
        assert t.precision == precision
        if precision == "bf16":  # channels-last goes with bf16 on the CPU
            conv_weights = [p for p in t.G.parameters() if p.dim() == 4]
            assert conv_weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
        g0 = {n: p.detach().float().clone() for n, p in t.G.named_parameters()}
        d0 = {n: p.detach().float().clone() for n, p in t.D.named_parameters()}
        stats = t.train_step()
        results[precision] = ({k: float(v) for k, v in stats.items()}, _delta(g0, t.G), _delta(d0, t.D))
    (s32, g32, d32), (s16, g16, d16) = results["fp32"], results["bf16"]
    for key in ("loss_d", "loss_g"):
        assert s16[key] == pytest.approx(s32[key], rel=0.05, abs=0.02), key
    for a, b in ((g32, g16), (d32, d16)):
        assert a.abs().max() > 0  # the step changed the weights
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0)
        assert cos > 0.8


def test_a_bf16_run_saves_resumes_and_exports_plain_tensors(tmp_path):
    """Channels-last G and D save as plain tensors and load back into a fresh trainer; the
    exported checkpoint (G_ema) opens as any other."""
    from models.io.checkpoint import load_checkpoint

    cfg = training_config("tiny-rooms-projected")
    t = Trainer(cfg, tmp_path, device="cpu", precision="bf16")
    t.run(max_steps=2)
    resumed = Trainer(cfg, tmp_path, device="cpu", precision="bf16", resume=tmp_path)
    assert resumed.step == 2
    for (n, a), b in zip(t.G.state_dict().items(), resumed.G.state_dict().values()):
        assert torch.equal(a, b), n
    G, _ = load_checkpoint(tmp_path / f"{cfg.name}.safetensors")
    assert all(p.is_contiguous() for p in G.parameters())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_d_step_benchmark_times_each_config_at_the_precision_asked(precision, capsys):
    """`bench_d_step` prints one line per config with its D and G step times, and says the
    precision: its README table is fp32, what training uses here is bf16."""
    from models.training import bench_d_step

    bench_d_step.main(["--configs", "tiny-rooms-projected,tiny-rooms-layout", "--repeats", "1", "--warmup", "0",
                       "--precision", precision])
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(precision)
    for name, line in zip(("tiny-rooms-projected", "tiny-rooms-layout"), out[1:], strict=True):
        assert line.startswith(name)
        d_ms, g_ms = (float(line.split(word)[1].split("ms")[0]) for word in ("D step median", "G step median"))
        assert d_ms > 0 and g_ms > 0
