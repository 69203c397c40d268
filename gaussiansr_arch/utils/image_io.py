"""Robust image reading and writing shared by the datasets and the tools.

BasicSR's ``imfrombytes`` returns ``None`` (and the caller later fails far away with an
``AttributeError``) when an image is empty, truncated or not an image. Everything here fails at
once with :class:`ImageReadError`, a one-line message that names the file.

Conventions of :func:`read_image` / :func:`decode_image` (what BasicSR users expect):

* grayscale images are repeated to 3 channels;
* an alpha channel is dropped (no compositing: the colour values are kept as stored);
* 16-bit images are scaled to 8 bits with ``round(v / 257)`` (65535 -> 255), so that every
  image, whatever its bit depth, yields the same uint8 / float32 values BasicSR's metrics see;
* the default result is RGB ``uint8`` HxWx3; ``float32=True`` gives ``uint8 / 255`` in [0, 1],
  ``channel_order='bgr'`` gives OpenCV's order like ``basicsr.utils.imfrombytes``.

:func:`imresize_to` is MATLAB's antialiased bicubic ``imresize(img, [h w])`` with an exact output
size. ``basicsr.utils.matlab_functions.imresize`` only takes one scale for both axes and returns
``ceil(in * scale)``, so it cannot give an exact (h, w) when the two axes have slightly different
ratios (e.g. a 97x148 crop to 27x41 at scale 3.6), and floating point can make it one pixel too
big. We reuse basicsr's kernel weights so the result equals ``imresize`` whenever that one hits
the requested size.

:func:`imresize_pil` is the other degradation in use: LIIF's ``resize_fn`` (also used by the
GaussianSR authors' code), ``ToTensor()(Resize(size, BICUBIC)(ToPILImage()(img)))``, i.e. Pillow's
bicubic resize of the image truncated to 8 bits. It is reproduced bit for bit with Pillow alone.
"""

import os
from os import PathLike

import cv2
import numpy as np
import torch
from basicsr.utils.matlab_functions import calculate_weights_indices
from PIL import Image

from gaussiansr_arch.utils.atomic import write_bytes_atomic

__all__ = [
    'IMAGE_EXTENSIONS',
    'ImageReadError',
    'decode_image',
    'read_image',
    'write_image_atomic',
    'imresize_to',
    'imresize_pil',
]

# File name endings (lower case) that the tools and the data preparation take for images.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class ImageReadError(ValueError):
    """An image could not be read or decoded. The message is one line and names the file."""


def _fail(name: str, reason: str) -> ImageReadError:
    return ImageReadError(f'cannot read image {name}: {reason}')


def _jpeg_is_truncated(content: bytes) -> bool:
    """True for a JPEG whose last scan is not followed by an end-of-image marker.

    Older OpenCV builds decode a truncated JPEG with a warning and fill the missing part with grey;
    this catches it whatever the OpenCV version. 0xFFD9 cannot occur inside entropy-coded data
    (0xFF is byte-stuffed there), and an EXIF thumbnail lies before the main scan, so "last EOI
    after last SOS" is a safe test that still allows trailing bytes after the EOI.
    """
    return content.rfind(b'\xff\xd9') < content.rfind(b'\xff\xda')


def decode_image(
    content: bytes, name: str = '<bytes>', float32: bool = False, channel_order: str = 'rgb'
) -> np.ndarray:
    """Decode an encoded image (PNG, JPEG, BMP, TIFF, WebP ...) held in memory.

    Args:
        content (bytes): The encoded file content.
        name (str): What to call the image in error messages (a path or an LMDB key).
        float32 (bool): Return float32 in [0, 1] (``uint8 / 255``) instead of uint8.
        channel_order (str): ``'rgb'`` (default) or ``'bgr'``.

    Returns:
        ndarray: HxWx3, uint8 or float32.

    Raises:
        ImageReadError: empty, truncated, corrupt or unsupported data.
    """
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if content is None:
        raise _fail(name, 'no data (missing LMDB key?)')
    content = bytes(content)
    if len(content) == 0:
        raise _fail(name, 'file is empty (0 bytes)')
    if content[:2] == b'\xff\xd8' and _jpeg_is_truncated(content):
        raise _fail(name, 'truncated JPEG (no end-of-image marker)')
    # OpenCV logs its own warning for a truncated PNG; our one-line error names the file instead.
    log_level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:  # some OpenCV versions raise instead of returning None
        raise _fail(name, f'OpenCV error: {str(err).strip().splitlines()[-1]}') from None
    finally:
        cv2.utils.logging.setLogLevel(log_level)
    if img is None:
        raise _fail(name, f'not a decodable image or truncated/corrupt ({len(content)} bytes)')

    if img.dtype == np.uint16:
        # round(v / 257) maps 0..65535 onto 0..255 exactly at both ends
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise _fail(name, f'unsupported pixel type {img.dtype} (expected 8- or 16-bit)')

    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels == 1:
        img = np.repeat(img, 3, axis=2)
    elif channels == 4:
        img = img[:, :, :3]  # BGRA -> BGR, alpha dropped
    elif channels != 3:
        raise _fail(name, f'unsupported number of channels {channels}')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise _fail(name, f'image has zero size {img.shape[:2]}')

    if channel_order == 'rgb':
        img = img[:, :, ::-1]
    img = np.ascontiguousarray(img)
    if float32:
        img = img.astype(np.float32) / 255.0
    return img


def read_image(source, name: str | None = None, float32: bool = False, channel_order: str = 'rgb') -> np.ndarray:
    """Read an image from a path or from encoded bytes.

    Args:
        source (str | PathLike | bytes): A file path, or the encoded content (e.g. from basicsr's
            ``FileClient.get``).
        name (str | None): Name used in error messages; defaults to the path.
        float32 (bool): Return float32 in [0, 1] instead of uint8.
        channel_order (str): ``'rgb'`` (default) or ``'bgr'``.

    Returns:
        ndarray: HxWx3 uint8 (or float32 in [0, 1]) in the requested channel order.

    Raises:
        ImageReadError: missing/unreadable file, empty, truncated, corrupt or not an image.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), name or '<bytes>', float32, channel_order)
    if not isinstance(source, (str, PathLike)):
        raise TypeError(f'source must be a path or bytes, got {type(source).__name__}')
    path = os.fspath(source)
    name = name or path
    try:
        with open(path, 'rb') as f:
            content = f.read()
    except FileNotFoundError:
        raise _fail(name, 'no such file') from None
    except IsADirectoryError:
        raise _fail(name, 'is a directory') from None
    except OSError as err:
        raise _fail(name, err.strerror or str(err)) from None
    return decode_image(content, name, float32, channel_order)


def write_image_atomic(path, img: np.ndarray, params: list | None = None) -> None:
    """Write an RGB uint8 image so that ``path`` is either absent/old or complete, never partial.

    The image is encoded, written to a temporary file in the same folder (same file system, so the
    rename is atomic) and moved onto ``path`` with ``os.replace``. Missing folders are created.
    On any error (a full disk, a folder that cannot be created ...) the temporary file and the
    folders created for it are removed, ``path`` is left as it was, and the OSError propagates.

    Args:
        path (str | PathLike): Destination; the extension chooses the format (.png, .jpg ...).
        img (ndarray): HxWx3 RGB or HxW grayscale, uint8.
        params (list | None): OpenCV ``imencode`` parameters.

    Raises:
        ValueError: bad array or unknown extension.
        OSError: the file cannot be written (nothing is left behind).
    """
    path = os.fspath(path)
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        got = getattr(img, 'dtype', type(img).__name__)
        raise ValueError(f'write_image_atomic expects a uint8 ndarray, got {got}')
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[:, :, ::-1]  # RGB -> OpenCV's BGR
    elif img.ndim != 2:
        raise ValueError(f'write_image_atomic expects HxWx3 or HxW, got shape {img.shape}')
    ext = os.path.splitext(path)[1]
    try:
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), params or [])
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f'cannot encode image for {path} (extension {ext!r})')
    write_bytes_atomic(path, buf.tobytes())


def _resize_axis(img: torch.Tensor, out_len: int, axis: int) -> torch.Tensor:
    """MATLAB bicubic (antialiased) resize of one axis of a [C, H, W] float tensor."""
    in_len = img.shape[axis]
    if out_len == in_len:
        return img
    weights, indices, sym_s, sym_e = calculate_weights_indices(in_len, out_len, out_len / in_len, 'cubic', 4, True)
    start = indices[:, 0].long()
    width = weights.shape[1]
    # Symmetric padding (edge pixel repeated), as MATLAB and basicsr do; clamp the amounts in case
    # the kernel does not reach past one border.
    pad_s = max(sym_s, 0)
    pad_e = max(sym_e, int(start.max()) + width - pad_s - in_len, 0)
    idx = torch.arange(-pad_s, in_len + pad_e)
    idx = torch.where(idx < 0, -idx - 1, idx)
    idx = torch.where(idx >= in_len, 2 * in_len - 1 - idx, idx).clamp(0, in_len - 1)
    # padded position p holds source pixel idx[p]; output i uses padded [start_i, start_i + width)
    src = idx[start[:, None] + torch.arange(width)[None, :] + (pad_s - sym_s)]  # [out, width]
    # one gather + multiply-add per kernel tap: far less memory than gathering all taps at once
    shape = [1, 1, 1]
    shape[axis] = out_len
    out = None
    for k in range(width):
        term = img.index_select(axis, src[:, k]) * weights[:, k].reshape(shape)
        out = term if out is None else out + term
    return out


@torch.no_grad()
def imresize_to(img: np.ndarray, size) -> np.ndarray:
    """MATLAB ``imresize(img, [h w], 'bicubic')`` (antialiased) with an exact output size.

    Rows are resized first, then columns, in float32, like ``basicsr.utils.matlab_functions.imresize``.

    Args:
        img (ndarray): HxWxC or HxW float image, [0, 1] range.
        size (tuple[int, int]): Output (h, w).

    Returns:
        ndarray: hxwxC (or hxw) float32, not clipped or rounded.
    """
    out_h, out_w = (int(v) for v in size)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f'imresize_to: output size must be positive, got {size}')
    squeeze = img.ndim == 2
    t = torch.from_numpy(np.ascontiguousarray(img[:, :, None] if squeeze else img, dtype=np.float32))
    t = t.permute(2, 0, 1)
    t = _resize_axis(_resize_axis(t, out_h, 1), out_w, 2)
    out = t.permute(1, 2, 0).contiguous().numpy()
    return out[:, :, 0] if squeeze else out


def imresize_pil(img: np.ndarray, size) -> np.ndarray:
    """LIIF's ``resize_fn``: Pillow bicubic resize of the 8-bit-truncated image, bit for bit.

    LIIF (and the GaussianSR authors' code) make LR images with
    ``transforms.ToTensor()(transforms.Resize(size, Image.BICUBIC)(transforms.ToPILImage()(img)))``
    on a float32 [0, 1] CHW tensor. Its steps, reproduced here without torchvision:

    * ``ToPILImage``: ``uint8(img * 255)`` computed in float32 and *truncated* (torchvision's
      ``(npimg * 255).astype(np.uint8)``, formerly ``pic.mul(255).byte()``); values outside [0, 1]
      are clipped here (torchvision would wrap them around);
    * ``Resize((h, w), BICUBIC)`` on a PIL image: ``Image.resize((w, h), Image.Resampling.BICUBIC)``
      (Pillow's bicubic, a = -0.5, antialiased when downscaling, rounded to uint8); an image already
      of size (h, w) is returned unchanged, as torchvision does;
    * ``ToTensor``: ``uint8 / 255`` in float32.

    Args:
        img (ndarray): HxWx3, HxWx1 or HxW float image, [0, 1] range (computed in float32).
        size (tuple[int, int]): Output (h, w).

    Returns:
        ndarray: hxwx3 (hxwx1, hxw: same layout as the input) float32 in [0, 1], multiples of 1/255.
    """
    out_h, out_w = (int(v) for v in size)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f'imresize_pil: output size must be positive, got {size}')
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        raise ValueError(f'imresize_pil: expects an HxW, HxWx1 or HxWx3 image, got shape {img.shape}')
    x = np.asarray(img, dtype=np.float32) * np.float32(255)
    x = np.clip(x, 0, 255).astype(np.uint8)  # truncation toward zero, like ToPILImage
    pil = Image.fromarray(np.ascontiguousarray(x[:, :, 0] if x.ndim == 3 and x.shape[2] == 1 else x))
    if pil.size != (out_w, out_h):
        pil = pil.resize((out_w, out_h), Image.Resampling.BICUBIC)
    out = np.asarray(pil, dtype=np.uint8).astype(np.float32) / np.float32(255)
    return out.reshape(out_h, out_w, *img.shape[2:])
