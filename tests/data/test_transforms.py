"""Transforms: torchvision's semantics, checked against NumPy / torch references."""

import numpy as np
import pytest
import torch

import danlu as dl
from danlu.data import transforms as T


def test_to_tensor_gray_and_color_uint8():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    t = T.ToTensor()(gray)
    assert t.shape == (1, 3, 4) and t.dtype is dl.float32 and t.is_contiguous()
    np.testing.assert_array_equal(t.numpy()[0], torch.tensor(gray).float().div(255).numpy())
    color = np.random.randint(0, 256, (5, 6, 3)).astype(np.uint8)
    t = T.ToTensor()(color)
    assert t.shape == (3, 5, 6) and t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), torch.tensor(color).permute(2, 0, 1).float().div(255).numpy())
    assert float(t.max()) <= 1.0 and float(t.min()) >= 0.0


def test_to_tensor_keeps_non_uint8_values_and_dtype():
    a = np.random.rand(4, 4).astype(np.float32)
    t = T.ToTensor()(a)
    assert t.dtype is dl.float32 and t.shape == (1, 4, 4)
    np.testing.assert_array_equal(t.numpy()[0], a)
    assert T.ToTensor()(np.ones((2, 2, 2), np.int32)).dtype is dl.int32


def test_to_tensor_follows_default_dtype():
    dl.set_default_dtype(dl.float64)
    assert T.ToTensor()(np.zeros((2, 2), np.uint8)).dtype is dl.float64


def test_to_tensor_errors():
    with pytest.raises(TypeError, match="NumPy image"):
        T.ToTensor()([[1, 2]])
    with pytest.raises(ValueError, match="2 or 3 dimensional"):
        T.ToTensor()(np.zeros(3, np.uint8))


def test_normalize_matches_torch_formula():
    x = np.random.rand(3, 4, 5).astype(np.float32)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = T.Normalize(mean, std)(dl.tensor(x))
    ref = (torch.tensor(x) - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6)
    assert out.dtype is dl.float32
    # Batched input [N, C, H, W] and a single mean for every channel.
    out = T.Normalize([0.5], [0.5])(dl.ones(2, 3, 2, 2))
    assert out.shape == (2, 3, 2, 2) and out.tolist()[1][2][1][1] == 1.0


def test_normalize_inplace_and_not():
    x = dl.ones(1, 2, 2)
    out = T.Normalize([1.0], [1.0])(x)
    assert x.tolist() == [[[1.0, 1.0], [1.0, 1.0]]] and out.sum().item() == 0
    out = T.Normalize([1.0], [1.0], inplace=True)(x)
    assert out is x and x.sum().item() == 0


def test_normalize_errors():
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize([0.0], [0.0])(dl.ones(1, 2, 2))
    with pytest.raises(TypeError, match="float tensor"):
        T.Normalize([0.0], [1.0])(dl.ones(1, 2, 2, dtype=dl.uint8))
    with pytest.raises(ValueError, match=r"\[..., C, H, W\]"):
        T.Normalize([0.0], [1.0])(dl.ones(2, 2))
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize([0.0], [1.0])(np.ones((1, 2, 2)))


NP_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


@pytest.mark.parametrize("mode", list(NP_MODES))
@pytest.mark.parametrize("padding", [1, (2, 1), (1, 2, 0, 3)])
def test_random_crop_padding_modes_match_numpy_pad(mode, padding):
    img = np.arange(20, dtype=np.uint8).reshape(4, 5)
    p = padding if isinstance(padding, tuple) else (padding,)
    left, top, right, bottom = (p * 4)[:4] if len(p) == 1 else (p[0], p[1], p[0], p[1]) if len(p) == 2 else p
    kw = {"constant_values": 9} if mode == "constant" else {}
    ref = np.pad(img, ((top, bottom), (left, right)), mode=NP_MODES[mode], **kw)
    size = ref.shape
    crop = T.RandomCrop(size, padding=padding, fill=9, padding_mode=mode)
    np.testing.assert_array_equal(crop(img), ref)  # the window is the whole padded image
    # The same on a tensor image [C, H, W].
    timg = dl.tensor(np.stack([img, img + 1]))
    out = crop(timg)
    assert isinstance(out, dl.Tensor) and out.dtype is dl.uint8
    np.testing.assert_array_equal(out.numpy()[0], ref)
    ref1 = np.pad(img + 1, ((top, bottom), (left, right)), mode=NP_MODES[mode], **kw)
    np.testing.assert_array_equal(out.numpy()[1], ref1)


def test_random_crop_reflect_matches_torch_pad():
    x = torch.arange(30.0).reshape(1, 5, 6)
    ref = torch.nn.functional.pad(x[None], (2, 1, 3, 2), mode="reflect")[0]
    out = T.RandomCrop(tuple(ref.shape[1:]), padding=(2, 3, 1, 2), padding_mode="reflect")(dl.tensor(x.numpy()))
    np.testing.assert_array_equal(out.numpy(), ref.numpy())


def test_random_crop_window_is_a_true_crop_and_reproducible():
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    dl.manual_seed(3)
    crops = [T.RandomCrop(3)(img) for _ in range(30)]
    corners = set()
    for c in crops:
        i, j = divmod(int(c[0, 0]), 8)
        np.testing.assert_array_equal(c, img[i:i + 3, j:j + 3])
        corners.add((i, j))
    assert len(corners) > 5
    dl.manual_seed(3)
    again = [T.RandomCrop(3)(img) for _ in range(30)]
    assert all((a == b).all() for a, b in zip(crops, again, strict=True))


def test_random_crop_color_image_and_fill_per_channel():
    img = np.zeros((2, 2, 3), np.uint8)
    out = T.RandomCrop(4, padding=1, fill=(1, 2, 3))(img)
    assert out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == [1, 2, 3] and out[1, 1].tolist() == [0, 0, 0]
    t = T.RandomCrop(4, padding=1, fill=(1, 2, 3))(dl.zeros(3, 2, 2))
    assert t[:, 0, 0].tolist() == [1.0, 2.0, 3.0] and t[:, 1, 1].tolist() == [0.0, 0.0, 0.0]


def test_random_crop_pad_if_needed_and_errors():
    out = T.RandomCrop((3, 6), pad_if_needed=True)(np.ones((2, 4), np.uint8))
    assert out.shape == (3, 6)
    with pytest.raises(ValueError, match="larger than the input image size"):
        T.RandomCrop(5)(np.ones((4, 4)))
    with pytest.raises(ValueError, match="padding_mode"):
        T.RandomCrop(2, padding_mode="wrap")
    with pytest.raises(ValueError, match="size should be"):
        T.RandomCrop((1, 2, 3))


def test_random_horizontal_flip():
    img = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(img), img[:, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(img), img)
    t = dl.tensor(img[None])
    assert T.RandomHorizontalFlip(1.0)(t).tolist() == [[[2, 1, 0], [5, 4, 3]]]
    dl.manual_seed(0)
    flips = [T.RandomHorizontalFlip()(img)[0, 0] == 2 for _ in range(400)]
    assert 150 < sum(flips) < 250
    dl.manual_seed(0)
    assert flips == [T.RandomHorizontalFlip()(img)[0, 0] == 2 for _ in range(400)]


def test_compose_lambda_and_reprs():
    tf = T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2), T.Normalize([1.0], [1.0])])
    out = tf(np.full((2, 2), 255, np.uint8))
    assert out.tolist() == [[[1.0, 1.0], [1.0, 1.0]]]
    assert "ToTensor()" in repr(tf) and "Normalize(mean=[1.0], std=[1.0])" in repr(tf)
    with pytest.raises(TypeError, match="callable"):
        T.Lambda(3)


@pytest.mark.parametrize("tf", [T.RandomCrop(4, padding=2, padding_mode=m) for m in ("constant", "edge", "reflect",
                                                                                      "symmetric")]
                         + [T.RandomCrop((7, 5), pad_if_needed=True, fill=3.0), T.RandomHorizontalFlip(1.0)])
def test_tensors_with_grad_give_the_same_result_and_a_gradient(tf):
    x = dl.rand(3, 6, 6)
    dl.manual_seed(1)
    plain = tf(x)
    xg = x.clone().requires_grad_()
    dl.manual_seed(1)
    tracked = tf(xg)
    assert tracked.requires_grad
    np.testing.assert_array_equal(plain.numpy(), tracked.detach().numpy())
    tracked.sum().backward()
    assert xg.grad is not None and xg.grad.shape == x.shape and xg.grad.sum().item() > 0
