"""Audit of the MTM operator, the layers' caches and the frame path: what a cache keeps must
follow a model moved in place (device, dtype) and must never be an inference tensor, and an
empty batch goes through the MTM layers as through the plain ones."""
import torch

from kernels import deform_modconv, modulated_conv2d
from models.io.library import untrained_generator
from models.nets.generator import Latents
from models.nets.layers import _bilinear_matrix, bilinear_resize


def _as(lat: Latents, dtype: torch.dtype) -> Latents:
    return Latents(**{name: (value.to(dtype) if value is not None and value.is_floating_point() else value)
                      for name, value in vars(lat).items()})


def test_a_preview_after_the_model_moved_in_place_uses_taps_of_its_new_dtype():
    """.to() keeps each parameter (object and version) and swaps its data: the studio moves its
    model to the CPU so when the GPU runs out of memory. The smooth demodulation taps a preview
    cached before must not be reused on the other device or dtype (here float32 -> float64,
    which a CPU-only test can do; the GPU -> CPU move is the same mechanism)."""
    moved = untrained_generator("tiny-rooms")
    lat = moved.sample_latents(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        moved(lat, noise_mode="const", stop_at=16)  # fills the float32 taps
        moved.double()
        after = moved(_as(lat, torch.float64), noise_mode="const", stop_at=16)
        fresh = untrained_generator("tiny-rooms").double()(_as(lat, torch.float64), noise_mode="const", stop_at=16)
    assert after.dtype == torch.float64
    assert torch.equal(after, fresh)


def test_gradients_after_rendering_under_inference_mode():
    """A render under torch.inference_mode (a library user's choice) must not leave inference
    tensors in the process-wide caches: the bilinear resampling matrices and a layer's smooth
    demodulation taps. Before, any later gradient through them (training on the CPU, fitting
    latents through a preview) raised "Inference tensors cannot be saved for backward"."""
    _bilinear_matrix.cache_clear()  # this process's earlier tests may have made the matrices already
    generator = untrained_generator("tiny-rooms")  # frozen weights, as when fitting latents
    lat = generator.sample_latents(1, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        generator(lat, noise_mode="const")
        generator(lat, noise_mode="const", stop_at=16)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    bilinear_resize(x, 8).sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, torch.full_like(x, 4.0))
    assert lat.z_blocks is not None
    z = lat.z_blocks.clone().requires_grad_(True)
    lat.z_blocks = z
    generator(lat, noise_mode="const", stop_at=16).square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    trainable = untrained_generator("tiny-rooms").requires_grad_(True)
    trainable(trainable.sample_latents(2, torch.Generator().manual_seed(1))).square().mean().backward()
    assert trainable.convs["8"][0].weight.grad is not None


def test_an_empty_batch_goes_through_the_mtm_operator():
    """The dispatcher sends empty tensors to the reference; modulated_conv2d and a generator
    without MTM layers take a batch of 0, and the reference raised on its reshape."""
    x = torch.randn(0, 2, 4, 5, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, requires_grad=True)
    offset = torch.zeros(0, 18, 4, 5, requires_grad=True)
    style = torch.rand(0, 2, 4, 5, requires_grad=True)
    y = deform_modconv(x, weight, offset, style=style)
    assert y.shape == modulated_conv2d(x, weight, style).shape == (0, 3, 4, 5)
    y.sum().backward()
    assert weight.grad is not None and offset.grad is not None and offset.grad.shape == offset.shape
    generator = untrained_generator("tiny-rooms")
    assert generator.config.mtm
    with torch.no_grad():
        assert generator(generator.sample_latents(0), noise_mode="const").shape == (0, 3, 32, 32)
