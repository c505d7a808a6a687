"""Image transforms, as ``torchvision.transforms`` (without PIL).

Images are either NumPy arrays laid out ``H x W`` or ``H x W x C`` (what the datasets return, in the role
of torchvision's PIL images) or danlu tensors laid out ``[..., C, H, W]`` (after :class:`ToTensor`).
Random transforms draw from danlu's default generator, so ``danlu.manual_seed`` (and the per-worker
seeding of the DataLoader) makes them reproduce.

>>> import numpy as np, danlu as dl
>>> from danlu.data import transforms as T
>>> tf = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))])
>>> tf(np.full((2, 2), 255, np.uint8))
tensor([[[1., 1.],
         [1., 1.]]])
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np

from ..core import dtypes as _dt
from ..core.tensor import Tensor

__all__ = ["Compose", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Lambda"]


class Compose:
    """Apply transforms one after another.

    >>> from danlu.data.transforms import Compose, Lambda
    >>> Compose([Lambda(lambda x: x + 1), Lambda(lambda x: x * 10)])(1)
    20
    """

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class ToTensor:
    """A NumPy image ``H x W`` or ``H x W x C`` -> a danlu tensor ``C x H x W``.

    uint8 images are scaled to [0, 1] in the default float dtype (float32); other dtypes keep their values
    and dtype, as torchvision's ToTensor does.

    >>> import numpy as np
    >>> from danlu.data.transforms import ToTensor
    >>> t = ToTensor()(np.array([[0, 255]], np.uint8)); t.shape, t.dtype, t.tolist()
    (danlu.Size([1, 1, 2]), danlu.float32, [[[0.0, 1.0]]])
    """

    def __call__(self, pic) -> Tensor:
        from ..core.creation import from_numpy

        if not isinstance(pic, np.ndarray):
            raise TypeError(f"ToTensor: expected a NumPy image array (H x W or H x W x C), got "
                            f"{type(pic).__name__}")
        if pic.ndim not in (2, 3):
            raise ValueError(f"ToTensor: the image should be 2 or 3 dimensional (H x W or H x W x C), got "
                             f"{pic.ndim} dimensions (shape {list(pic.shape)})")
        chw = (pic[None] if pic.ndim == 2 else pic.transpose(2, 0, 1))
        if pic.dtype == np.uint8:
            out = np.divide(chw, 255, dtype=_dt.get_default_dtype().np, order="C")
            return from_numpy(out)
        return from_numpy(np.ascontiguousarray(chw))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize:
    """``(x - mean[c]) / std[c]`` for each channel ``c`` of a float tensor ``[..., C, H, W]``.

    >>> import danlu as dl
    >>> from danlu.data.transforms import Normalize
    >>> Normalize([1.0, 2.0], [2.0, 4.0])(dl.ones(2, 1, 1)).flatten()
    tensor([ 0.0000, -0.2500])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean = mean
        self.std = std
        self.inplace = inplace
        self._stats: dict = {}  # dtype -> (mean, std) tensors shaped to broadcast over [C, H, W]

    def _stats_for(self, dtype) -> tuple[Tensor, Tensor]:
        # Built once per dtype: this runs once per sample, often in DataLoader workers.
        stats = self._stats.get(dtype)
        if stats is None:
            from ..core.creation import from_numpy

            mean = np.asarray(self.mean, dtype=dtype.np)
            std = np.asarray(self.std, dtype=dtype.np)
            if (std == 0).any():
                raise ValueError(f"Normalize: std evaluated to zero after conversion to {dtype.name}, leading to "
                                 f"division by zero (std={self.std})")
            mean = mean.reshape(-1, 1, 1) if mean.ndim == 1 else mean
            std = std.reshape(-1, 1, 1) if std.ndim == 1 else std
            stats = self._stats[dtype] = (from_numpy(mean), from_numpy(std))
        return stats

    def __call__(self, tensor: Tensor) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"Normalize: expected a danlu tensor image [..., C, H, W], got {type(tensor).__name__};"
                            " apply ToTensor() first")
        if not tensor.is_floating_point():
            raise TypeError(f"Normalize: input tensor should be a float tensor, got {tensor.dtype.name}; "
                            "apply ToTensor() (which scales uint8 images) or convert with .float()")
        if tensor.ndim < 3:
            raise ValueError(f"Normalize: expected a tensor image of size [..., C, H, W], got shape "
                             f"{list(tensor.shape)}")
        mean, std = self._stats_for(tensor.dtype)
        if self.inplace:
            return tensor.sub_(mean).div_(std)
        return (tensor - mean) / std

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


def _size_pair(size, name: str) -> tuple[int, int]:
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{name}: size should be an int or a sequence of 1 or 2 ints (height, width), got {size!r}")


def _hw(img) -> tuple[int, int]:
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"expected a NumPy image H x W or H x W x C, got shape {list(img.shape)}")
        return img.shape[0], img.shape[1]
    if isinstance(img, Tensor):
        if img.ndim < 2:
            raise ValueError(f"expected a tensor image [..., H, W], got shape {list(img.shape)}")
        return img.shape[-2], img.shape[-1]
    raise TypeError(f"expected a NumPy image array or a danlu tensor, got {type(img).__name__}")


def _as_array(img):
    """``(array, axes of rows and columns, whether to wrap the result as a tensor)``, or None for a tensor that
    requires grad (transformed with danlu ops, so that the gradient flows).

    Transforms run once per sample, usually in DataLoader workers, where the dispatch cost of several danlu
    ops per sample would dominate: tensors without autograd history are transformed on their NumPy data."""
    _hw(img)
    if isinstance(img, np.ndarray):
        return img, (0, 1), False
    if img.requires_grad:
        return None
    return img.numpy(), (img.ndim - 2, img.ndim - 1), True


def _wrap(a: np.ndarray) -> Tensor:
    from ..core.creation import from_numpy

    return from_numpy(a)


def _pad_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of every output position along one axis, for the index-based padding modes."""
    pos = np.arange(-before, n + after)
    if mode == "edge":
        return np.clip(pos, 0, n - 1)
    if mode == "reflect":  # mirror without repeating the edge: period 2n - 2
        if n == 1:
            return np.zeros_like(pos)
        period = 2 * n - 2
        r = np.mod(pos, period)
        return np.where(r < n, r, period - r)
    period = 2 * n  # symmetric: mirror repeating the edge
    r = np.mod(pos, period)
    return np.where(r < n, r, period - 1 - r)


def _check_pad(h: int, w: int, left: int, top: int, right: int, bottom: int, mode: str) -> None:
    if mode == "reflect" and (max(left, right) >= w or max(top, bottom) >= h):
        raise ValueError(f"Pad: reflect padding of ({left}, {top}, {right}, {bottom}) needs padding smaller than "
                         f"the image size {h} x {w}")


def _pad_array(a: np.ndarray, axes: tuple[int, int], left: int, top: int, right: int, bottom: int, fill,
               mode: str) -> np.ndarray:
    if not (left or top or right or bottom):
        return a
    ra, ca = axes
    h, w = a.shape[ra], a.shape[ca]
    _check_pad(h, w, left, top, right, bottom, mode)
    if mode != "constant":
        return np.take(np.take(a, _pad_index(h, top, bottom, mode), axis=ra), _pad_index(w, left, right, mode),
                       axis=ca)
    shape = list(a.shape)
    shape[ra], shape[ca] = h + top + bottom, w + left + right
    out = np.empty(shape, a.dtype)
    fill_a = np.asarray(fill, dtype=a.dtype)
    if fill_a.ndim and ca == a.ndim - 1 and ra == a.ndim - 2:  # channels first: one fill value per channel
        fill_a = fill_a.reshape(-1, 1, 1)
    out[...] = fill_a
    window = [slice(None)] * a.ndim
    window[ra], window[ca] = slice(top, top + h), slice(left, left + w)
    out[tuple(window)] = a
    return out


def _pad_tensor(img: Tensor, left: int, top: int, right: int, bottom: int, fill, mode: str) -> Tensor:
    from ..core.creation import as_tensor

    if not (left or top or right or bottom):
        return img
    h, w = img.shape[-2], img.shape[-1]
    _check_pad(h, w, left, top, right, bottom, mode)
    if mode == "constant":
        from ..ops.creation import zeros

        fill_t = as_tensor(np.asarray(fill, dtype=img.dtype.np))
        if fill_t.ndim:
            fill_t = fill_t.reshape(-1, 1, 1)
        out = zeros(tuple(img.shape[:-2]) + (h + top + bottom, w + left + right), dtype=img.dtype) + fill_t
        out[..., top:top + h, left:left + w] = img
        return out
    rows = as_tensor(_pad_index(h, top, bottom, mode))
    cols = as_tensor(_pad_index(w, left, right, mode))
    return img.index_select(-2, rows).index_select(-1, cols)


def _randint(high: int) -> int:
    """An int uniform on [0, high): the draw ``danlu.randint(0, high, (1,))`` makes, from the same generator."""
    from ..core.random import default_generator

    return int(default_generator.np.integers(0, high, size=(1,), dtype=np.int64)[0])


def _rand() -> float:
    """A float32 uniform on [0, 1): the draw ``danlu.rand(1)`` makes, from the same generator."""
    from ..core.random import default_generator

    return float(np.float32(default_generator.np.uniform(0.0, 1.0, size=(1,))[0]))


def _window(h: int, w: int, output_size: tuple[int, int]) -> tuple[int, int, int, int]:
    th, tw = output_size
    if h < th or w < tw:
        raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the input image size "
                         f"{(h, w)}; use padding= or pad_if_needed=True")
    if h == th and w == tw:
        return 0, 0, h, w
    return _randint(h - th + 1), _randint(w - tw + 1), th, tw


class RandomCrop:
    """Crop a random ``size`` window (optionally after padding), as torchvision's RandomCrop.

    ``padding`` is an int (all sides), a pair (left/right, top/bottom) or four ints (left, top, right,
    bottom); ``padding_mode`` is 'constant' (with ``fill``), 'edge', 'reflect' or 'symmetric'. The window's
    corner is drawn from danlu's default generator (as ``danlu.randint`` would).

    >>> import numpy as np, danlu as dl
    >>> from danlu.data.transforms import RandomCrop
    >>> _ = dl.manual_seed(0)
    >>> RandomCrop(2, padding=1)(np.ones((3, 3), np.uint8)).shape
    (2, 2)
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0, padding_mode: str = "constant"):
        self.size = _size_pair(size, "RandomCrop")
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"RandomCrop: padding_mode should be 'constant', 'edge', 'reflect' or 'symmetric', "
                             f"got {padding_mode!r}")
        if padding is not None and not isinstance(padding, numbers.Number | Sequence):
            raise TypeError(f"RandomCrop: padding should be an int or a sequence, got {type(padding).__name__}")
        if isinstance(padding, Sequence) and len(padding) not in (1, 2, 4):
            raise ValueError(f"RandomCrop: padding should have 1, 2 or 4 values, got {len(padding)}")
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode

    @staticmethod
    def get_params(img, output_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """A random crop window ``(top, left, height, width)`` of ``output_size`` inside ``img``."""
        return _window(*_hw(img), output_size)

    def _padding(self) -> tuple[int, int, int, int]:
        p = self.padding
        if p is None:
            return 0, 0, 0, 0
        if isinstance(p, numbers.Number):
            return (int(p),) * 4
        if len(p) == 1:
            return (int(p[0]),) * 4
        if len(p) == 2:
            return int(p[0]), int(p[1]), int(p[0]), int(p[1])
        return tuple(int(v) for v in p)

    def __call__(self, img):
        left, top, right, bottom = self._padding()
        th, tw = self.size
        work = _as_array(img)
        if work is None:  # a tensor with autograd history: danlu ops
            img = _pad_tensor(img, left, top, right, bottom, self.fill, self.padding_mode)
            h, w = img.shape[-2], img.shape[-1]
            if self.pad_if_needed and w < tw:
                img = _pad_tensor(img, tw - w, 0, tw - w, 0, self.fill, self.padding_mode)
            if self.pad_if_needed and h < th:
                img = _pad_tensor(img, 0, th - h, 0, th - h, self.fill, self.padding_mode)
            i, j, ch, cw = _window(img.shape[-2], img.shape[-1], self.size)
            return img[..., i:i + ch, j:j + cw]
        a, axes, wrap = work
        ra, ca = axes
        a = _pad_array(a, axes, left, top, right, bottom, self.fill, self.padding_mode)
        if self.pad_if_needed and a.shape[ca] < tw:
            d = tw - a.shape[ca]
            a = _pad_array(a, axes, d, 0, d, 0, self.fill, self.padding_mode)
        if self.pad_if_needed and a.shape[ra] < th:
            d = th - a.shape[ra]
            a = _pad_array(a, axes, 0, d, 0, d, self.fill, self.padding_mode)
        i, j, ch, cw = _window(a.shape[ra], a.shape[ca], self.size)
        window = [slice(None)] * a.ndim
        window[ra], window[ca] = slice(i, i + ch), slice(j, j + cw)
        a = a[tuple(window)]
        return _wrap(a) if wrap else a

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ``p`` (one draw from danlu's default generator per call,
    as ``danlu.rand(1)`` would).

    >>> import numpy as np
    >>> from danlu.data.transforms import RandomHorizontalFlip
    >>> RandomHorizontalFlip(p=1.0)(np.array([[1, 2, 3]]))
    array([[3, 2, 1]])
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img):
        work = _as_array(img)
        if _rand() >= self.p:
            return img
        if work is None:
            from ..ops.shape import flip

            return flip(img, (-1,))
        a, (_, ca), wrap = work
        out = np.flip(a, axis=ca).copy()
        return _wrap(out) if wrap else out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class Lambda:
    """Use a function as a transform.

    >>> from danlu.data.transforms import Lambda
    >>> Lambda(lambda x: x * 2)(21)
    42
    """

    def __init__(self, lambd: Callable) -> None:
        if not callable(lambd):
            raise TypeError(f"Lambda: argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
