"""The MTM operator and the modulated convolution. Knows nothing of GANs, models or Qt.

`deform_modconv` goes through the dispatcher (the Triton kernel for CUDA tensors where triton
is installed, else the reference); `modulated_conv2d` is the reference itself, since cuDNN
already makes it fast.
"""
from .dispatch import active_backend, deform_modconv
from .modconv_ref import modulated_conv2d, smooth_demod_taps, smooth_demodulation

__all__ = ["active_backend", "deform_modconv", "modulated_conv2d", "smooth_demod_taps", "smooth_demodulation"]
