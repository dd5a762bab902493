import numpy as np
import pytest
import torch
from PIL import Image

from semstyle.core.image import load_image, resize, save_image, target_size
from semstyle.errors import ImageError


def _check_rgb(t, h, w):
    assert t.shape == (1, 3, h, w) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0


def test_grey_palette_rgba_16bit_and_misnamed_files_load_as_rgb(tmp_path):
    grey = Image.fromarray(np.full((5, 7), 128, np.uint8), "L")
    grey.save(tmp_path / "grey.png")
    t = load_image(tmp_path / "grey.png")
    _check_rgb(t, 5, 7)
    assert torch.allclose(t, torch.full_like(t, 128 / 255))

    grey.convert("P").save(tmp_path / "palette.gif")
    _check_rgb(load_image(tmp_path / "palette.gif"), 5, 7)

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent on the left half: composited on white
    rgba[:, 2:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    t = load_image(tmp_path / "rgba.png")
    _check_rgb(t, 4, 4)
    assert torch.allclose(t[0, :, 0, 0], torch.ones(3)) and torch.allclose(t[0, :, 0, 3], torch.tensor([1.0, 0, 0]))

    deep = Image.fromarray(np.full((3, 3), 65535 // 2, np.uint16))
    deep.save(tmp_path / "deep16.png")
    t = load_image(tmp_path / "deep16.png")
    _check_rgb(t, 3, 3)
    assert float(t.mean()) == pytest.approx(0.5, abs=0.01)

    Image.fromarray(np.zeros((6, 2, 3), np.uint8)).save(tmp_path / "really_png.jpg", format="PNG")
    _check_rgb(load_image(tmp_path / "really_png.jpg"), 6, 2)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((2, 6, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    _check_rgb(load_image(tmp_path / "rot.jpg"), 6, 2)


@pytest.mark.parametrize("kind", ["missing", "empty", "corrupt", "folder"])
def test_bad_files_give_one_line_errors(tmp_path, kind):
    path = tmp_path / "x.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    elif kind == "folder":
        path.mkdir()
    with pytest.raises(ImageError) as err:
        load_image(path, what="style image")
    message = str(err.value)
    assert "style image" in message and str(path) in message and "\n" not in message


def test_resize_and_atomic_save(tmp_path):
    assert target_size(300, 400, 200) == (150, 200)
    assert target_size(300, 400, (10, 20)) == (10, 20)
    t = torch.rand(1, 3, 30, 40)
    assert resize(t, 20).shape == (1, 3, 15, 20)
    out = save_image(t, tmp_path / "sub" / "out.png")
    assert out.exists() and [p.name for p in out.parent.iterdir()] == ["out.png"]
    back = load_image(out)
    assert (back - t).abs().max() <= 1 / 255 + 1e-6


def test_as_image_takes_paths_and_checks_tensors(tmp_path):
    from semstyle.core.image import as_image

    save_image(torch.rand(1, 3, 4, 5), tmp_path / "a.png")
    assert as_image(tmp_path / "a.png").shape == (1, 3, 4, 5)
    t = torch.rand(1, 3, 6, 2, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    out = as_image(t, "content image")
    assert out.dtype == torch.float32 and out.is_contiguous()
    with pytest.raises(
        ImageError, match=r"^style image: expected an RGB tensor \(1, 3, H, W\).*got shape \(1, 4, 2, 2\)$"
    ):
        as_image(torch.rand(1, 4, 2, 2), "style image")
