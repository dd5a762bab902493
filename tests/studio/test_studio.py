"""The doodle studio: the doodle snapping (pure functions), then its HTTP API against a real server on 127.0.0.1
(styles and palettes, uploads and their limits, a run at 64 px with its progress events, Stop, the busy answer,
the results list). The server part needs the studio extra (starlette, uvicorn, python-multipart) and skips
without it. Runs go through the engine's run API with callbacks (``semstyle.api.run``)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image

from semstyle.core import semantic
from semstyle.errors import ConfigError, ImageError
from semstyle.studio import store as st

RED, BLUE, GREEN = (230, 25, 75), (0, 130, 200), (60, 180, 75)
PALETTE = torch.tensor([RED, BLUE, GREEN], dtype=torch.float32) / 255


# ---- snapping a drawn doodle to the palette (no server) ---------------------------------------------------------


def _rgba(h, w, color=None):
    a = np.zeros((h, w, 4), np.uint8)
    if color is not None:
        a[..., :3], a[..., 3] = color, 255
    return a


def test_snap_keeps_palette_colours_and_snaps_others_with_a_warning():
    d = _rgba(40, 60, RED)
    d[:, 30:, :3] = BLUE
    d[:, 29:31, :3] = (180, 60, 110)  # an anti-aliased seam, nearer red than blue
    d[5:10, 5:10, :3] = (240, 40, 60)  # a slightly-off red (a JPEG)
    mapped, labels, notes = st.snap_doodle(d, PALETTE)
    colours = {tuple(c) for c in mapped.reshape(-1, 3).tolist()}
    assert colours <= {RED, BLUE}
    assert (labels[5:10, 5:10] == 0).all()  # the off red went to red
    assert (labels[:, :31] == 0).all() and (labels[:, 31:] == 1).all()
    assert len(notes) == 1 and "snapped to the nearest palette colour" in notes[0] and "(240, 40, 60)" in notes[0]
    # exact palette colours: nothing to say
    clean = _rgba(40, 60, RED)
    clean[:, 30:, :3] = BLUE
    assert st.snap_doodle(clean, PALETTE)[2] == []


def test_unpainted_and_tiny_regions_take_the_nearest_painted_region_in_space():
    d = _rgba(50, 100)  # all unpainted
    d[:, :20, :3], d[:, :20, 3] = RED, 255
    d[:, 80:, :3], d[:, 80:, 3] = BLUE, 255
    d[25, 70, :3], d[25, 70, 3] = GREEN, 255  # one green pixel: 0.02 % of the doodle, under min_fraction
    mapped, labels, notes = st.snap_doodle(d, PALETTE, names=["sky", "sea", "grass"])
    # the unpainted middle splits at x = 50 between its nearest painted neighbours (the green pixel went to blue)
    assert (labels[:, :49] == 0).all() and (labels[:, 51:] == 1).all()
    assert not (labels == 2).any()
    assert any("'grass' (0.02%)" in n for n in notes)
    assert any("60.0% of the canvas was left unpainted" in n for n in notes)
    # what the run reads back: the map's palette is the two painted colours exactly
    found = semantic.extract_palette(torch.from_numpy(mapped).permute(2, 0, 1)[None].float() / 255)
    assert sorted(map(tuple, (found * 255).round().int().tolist())) == sorted([RED, BLUE])


def test_an_empty_doodle_is_an_error():
    with pytest.raises(ConfigError, match="nothing is painted"):
        st.snap_doodle(_rgba(20, 20), PALETTE)


def test_uploads_are_checked_by_decoding(tmp_path, monkeypatch):
    with pytest.raises(ImageError, match="not an image file"):
        st.decode_upload(b"%PDF-1.4 not a picture", "style image")
    with pytest.raises(ImageError, match="the file is empty"):
        st.decode_upload(b"", "photo")
    buf = io.BytesIO()
    Image.new("RGB", (200, 100)).save(buf, "PNG")
    monkeypatch.setattr(st, "MAX_PIXELS", 10_000)
    with pytest.raises(ImageError, match="200x100 is too many pixels"):
        st.decode_upload(buf.getvalue(), "photo")
    monkeypatch.undo()
    png = buf.getvalue()
    with pytest.raises(ImageError, match="could not be decoded"):
        st.decode_upload(png[: len(png) // 2], "photo")  # a truncated PNG


@pytest.mark.slow
def test_the_core_package_never_imports_the_web_server():
    code = (
        "import sys, semstyle, semstyle.cli, semstyle.studio, semstyle.studio.store; semstyle.cli.build_parser(); "
        "bad = [m for m in ('starlette', 'uvicorn', 'python_multipart', 'semstyle.studio.app') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )


def test_studio_command_without_the_extra_says_what_to_install(monkeypatch, capsys):
    from semstyle.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed: importing it raises ImportError
    assert main(["studio", "--no-browser"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("semstyle: error: ") and "uvicorn" in err and "\n" not in err
    assert "not installed; the studio needs its extra: pip install 'semstyle[studio]'" in err


# ---- the server -------------------------------------------------------------------------------------------------


class Client:
    """A tiny HTTP client on the standard library (JSON, multipart forms, server-sent events)."""

    def __init__(self, base: str):
        self.base = base

    def request(self, method, path, data=None, files=None, json_body=None, timeout=60, headers=None):
        headers, body = dict(headers or {}), None
        if files is not None or data is not None:
            boundary = uuid.uuid4().hex
            parts = []
            for k, v in (data or {}).items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
            for k, (filename, content, ctype) in (files or {}).items():
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{filename}"\r\n'
                    f"Content-Type: {ctype}\r\n\r\n".encode()
                    + content
                    + b"\r\n"
                )
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif json_body is not None:
            body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        req = urllib.request.Request(self.base + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")

    def json(self, method, path, **kw):
        status, body, _ = self.request(method, path, **kw)
        return status, json.loads(body)

    def events(self, path, timeout=300, until_frame=False):
        """Yield ``(event, data)`` from a server-sent event stream until its ``end`` event."""
        with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            event = None
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    yield event, json.loads(line[6:])
                    if event == "end":
                        return


def _png(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, np.uint8), mode).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def server(tmp_path):
    pytest.importorskip("starlette", reason="the studio extra is not installed (pip install '.[studio]')")
    pytest.importorskip("uvicorn", reason="the studio extra is not installed (pip install '.[studio]')")
    pytest.importorskip("python_multipart", reason="the studio extra is not installed (pip install '.[studio]')")
    from semstyle.studio.app import create_app
    from semstyle.studio.cli import BackgroundServer

    app = create_app(tmp_path / "studio", frame_every=2, poll=0.05)
    with BackgroundServer(app) as url:
        yield Client(url), tmp_path / "studio"


def _toy_style(client) -> dict:
    """A 96x64 painting with a red-ish left and a blue-ish right (with texture), and its two-colour map."""
    rng = np.random.default_rng(0)
    paint = np.zeros((64, 96, 3))
    paint[:, :48], paint[:, 48:] = (200, 60, 40), (40, 60, 200)
    paint = np.clip(paint + rng.uniform(-40, 40, paint.shape), 0, 255)
    smap = np.zeros((64, 96, 3))
    smap[:, :48], smap[:, 48:] = RED, BLUE
    status, style = client.json(
        "POST",
        "/api/styles",
        files={
            "image": ("painting.png", _png(paint), "image/png"),
            "map": ("painting_sem.png", _png(smap), "image/png"),
        },
    )
    assert status == 200, style
    return style


def _doodle(style, h=40, w=64, left=0, right=1) -> bytes:
    colours = [st_hex(p["color"]) for p in style["palette"]]
    d = np.zeros((h, w, 4), np.uint8)
    d[:, : w // 2, :3], d[:, w // 2 :, :3], d[..., 3] = colours[left], colours[right], 255
    return _png(d)


def st_hex(h: str) -> tuple[int, int, int]:
    return tuple(int(h[i : i + 2], 16) for i in (1, 3, 5))


def test_bundled_style_gets_an_automatic_map_and_its_palette(server):
    client, root = server
    status, listing = client.json("GET", "/api/styles")
    assert status == 200 and "starry_night" in [b["name"] for b in listing["bundled"]]
    status, style = client.json("POST", "/api/styles", data={"bundled": "starry_night", "regions": "3"})
    assert status == 200, style
    assert style["map"] == "auto" and len(style["palette"]) == 3
    # the palette is what the run will find in the stored map: the automatic map's colours, exactly
    status, body, ctype = client.request("GET", style["map_url"])
    assert status == 200 and ctype == "image/png"
    smap = torch.from_numpy(np.array(Image.open(io.BytesIO(body)).convert("RGB"))).permute(2, 0, 1)[None] / 255
    found = semantic.extract_palette(smap.float(), st.MAX_COLORS, st.MIN_FRACTION)
    assert [semantic.describe_color(c) for c in found] == [
        semantic.describe_color(torch.tensor(st_hex(p["color"])) / 255) for p in style["palette"]
    ]
    assert all(
        st_hex(p["color"]) in {tuple(c) for c in (semantic.AUTO_COLORS * 255).round().int().tolist()}
        for p in style["palette"]
    )
    assert abs(sum(p["share"] for p in style["palette"]) - 1) < 0.01
    # each region's mean colour in the painting, so the painter sees what a swatch stands for
    painting = torch.from_numpy(np.array(Image.open(root / "styles" / style["id"] / "style.png"))).permute(2, 0, 1)
    masks = semantic.map_to_masks(smap.float(), found)
    means = semantic.region_means(painting[None].float() / 255, masks)
    assert [p["mean"] for p in style["palette"]] == [
        "#" + "".join(f"{int(round(float(v) * 255)):02x}" for v in m) for m in means
    ]
    # renaming the swatches is kept with the style
    status, renamed = client.json(
        "PUT", f"/api/styles/{style['id']}/names", json_body={"names": ["sky", " stars ", ""]}
    )
    assert status == 200 and [p["name"] for p in renamed["palette"]] == ["sky", "stars", "region 3"]
    assert [p["name"] for p in client.json("GET", f"/api/styles/{style['id']}")[1]["palette"]] == [
        "sky",
        "stars",
        "region 3",
    ]
    status, err = client.json("POST", "/api/styles", data={"bundled": "../../etc/passwd"})
    assert status == 404 and "no bundled painting named" in err["error"]


def test_uploaded_style_with_its_map(server):
    client, root = server
    style = _toy_style(client)
    assert style["map"] == "upload" and {p["color"] for p in style["palette"]} == {"#e6194b", "#0082c8"}
    assert style["width"] == 96 and style["height"] == 64
    # a map of another shape, a greyscale map: one line each
    paint = _png(np.full((64, 96, 3), 128))
    status, err = client.json(
        "POST",
        "/api/styles",
        files={"image": ("a.png", paint, "image/png"), "map": ("m.png", _png(np.zeros((64, 64, 3))), "image/png")},
    )
    assert status == 400 and err["error"] == (
        "style map: is 64x64 but the painting is 96x64; a map must have its painting's shape"
    )
    status, err = client.json(
        "POST",
        "/api/styles",
        files={"image": ("a.png", paint, "image/png"), "map": ("m.png", _png(np.zeros((64, 96)), "L"), "image/png")},
    )
    assert status == 400 and err["error"].startswith("style map: is a greyscale image")


def test_bad_uploads_get_clear_answers_and_browser_names_are_never_paths(server, monkeypatch):
    from semstyle.studio import app as app_module

    client, root = server
    status, err = client.json(
        "POST", "/api/photos", files={"photo": ("photo.png", b"<html>not an image</html>", "image/png")}
    )
    assert status == 400 and err["error"].startswith("photo: not an image file (accepted: PNG, JPEG")
    monkeypatch.setattr(st, "MAX_UPLOAD_BYTES", 100_000)
    big = _png(np.random.default_rng(0).integers(0, 255, (300, 300, 3)))  # ~270 kB of noise
    status, err = client.json("POST", "/api/photos", files={"photo": ("big.png", big, "image/png")})
    assert status == 413 and "larger than" in err["error"]
    monkeypatch.setattr(app_module, "MAX_REQUEST_BYTES", 200_000)
    status, err = client.json("POST", "/api/photos", files={"photo": ("big.png", big, "image/png")})
    assert status == 413 and err["error"].startswith("upload: the request is 0.3 MB")
    monkeypatch.undo()
    # a file name that tries to leave the studio's folder is ignored: the photo is stored under its hash
    status, photo = client.json(
        "POST", "/api/photos", files={"photo": ("../../escaped.png", _png(np.zeros((40, 64, 3))), "image/png")}
    )
    assert status == 200 and photo["width"] == 64 and photo["id"].startswith("photo-")
    assert not list(root.parent.rglob("escaped*"))
    for path in (
        "/api/photos/..%2F..%2Fetc",
        "/api/runs/20260101-000000-abcd/files/..%2Fconfig.yaml",
        "/api/runs/..%2F..%2Fstyles/files/output.png",
        "/api/styles/starry_night-auto4/meta.json",
    ):
        status, err = client.json("GET", path)
        assert status in (400, 404) and err["error"], path


def test_other_hosts_and_other_origins_are_refused(server):
    client, root = server
    port = client.base.rsplit(":", 1)[1]
    status, _, _ = client.request("GET", "/api/styles", headers={"Host": f"localhost:{port}"})
    assert status == 200
    status, body, _ = client.request("GET", "/api/styles", headers={"Host": f"attacker.example:{port}"})
    assert status == 403 and json.loads(body)["error"].startswith("host 'attacker.example:")
    form = {"bundled": "starry_night", "regions": "2"}
    status, body, _ = client.request("POST", "/api/styles", data=form, headers={"Origin": "http://attacker.example"})
    assert status == 403 and "must come from its own page" in json.loads(body)["error"]
    assert not any((root / "styles").iterdir())
    status, _, _ = client.request("POST", "/api/styles", data=form, headers={"Origin": client.base})
    assert status == 200


def test_a_photo_segmented_together_with_the_painting_gives_a_starting_doodle(server):
    client, root = server
    tubingen = st.bundled_styles_dir().parent / "content" / "tubingen.jpg"
    photo_png = _png(np.asarray(Image.open(tubingen).convert("RGB").resize((128, 96))))
    status, photo = client.json("POST", "/api/photos", files={"photo": ("t.jpg", photo_png, "image/png")})
    status, style = client.json("POST", "/api/styles", data={"bundled": "starry_night", "regions": "3"})
    status, joint = client.json(
        "POST", f"/api/photos/{photo['id']}/automap", data={"style": style["id"], "regions": "3"}
    )
    assert status == 200, joint
    assert joint["map"] == "joint" and joint["id"] != style["id"] and len(joint["palette"]) == 3
    # the photo's map is the photo's half of one k-means over both images (semantic.auto_maps), in the palette
    status, body, _ = client.request("GET", joint["photo_map_url"])
    photo_map = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))

    def load(p):
        return torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None].float() / 255

    painting_masks, photo_masks = semantic.auto_maps(
        [load(root / "styles" / style["id"] / "style.png"), load(root / "photos" / photo["id"] / "photo.png")], 3
    )
    expected = (semantic.masks_to_map(photo_masks)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert photo_map.shape == (96, 128, 3) and np.array_equal(photo_map, expected)
    palette = {st_hex(p["color"]) for p in joint["palette"]}
    assert {tuple(c) for c in photo_map.reshape(-1, 3).tolist()} <= palette
    status, err = client.json("POST", f"/api/photos/{photo['id']}/automap", data={"style": style["id"], "regions": "9"})
    assert status == 400 and err["error"] == "regions: automatic maps need 2 to 8 regions, got 9"


def _run_to_end(client, run_id, **kw):
    events = list(client.events(f"/api/runs/{run_id}/events", **kw))
    assert events[-1][0] == "end", events[-1]
    return events


@pytest.mark.slow
def test_paint_a_doodle_with_progress_events_and_a_result(server):
    client, root = server
    style = _toy_style(client)
    # an off-palette colour in the doodle: snapped, with a warning shown
    d = np.asarray(Image.open(io.BytesIO(_doodle(style)))).copy()
    d[:8, :8, :3] = (250, 30, 60)
    status, answer = client.json(
        "POST",
        "/api/paint",
        data={"style": style["id"], "size": "64", "preset": "fast", "steps": "6"},
        files={"doodle": ("doodle.png", _png(d), "image/png")},
    )
    assert status == 202, answer
    assert any("snapped to the nearest palette colour" in w for w in answer["warnings"])
    events = _run_to_end(client, answer["run"])
    steps = [e for kind, e in events if kind == "progress" and e["kind"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 7)) and all(e["loss"] > 0 for e in steps)
    assert steps[0]["size"] == [40, 64]  # the doodle's shape at 64 px
    frames = [e for kind, e in events if kind == "frame"]
    assert len(frames) >= 2
    jpeg = Image.open(io.BytesIO(base64.b64decode(frames[-1]["image"].split(",", 1)[1])))
    assert jpeg.format == "JPEG" and jpeg.size == (64, 40)
    assert events[-1][1]["state"] == "done"
    # the result is an ordinary run folder, listed with its downloads
    status, listing = client.json("GET", "/api/runs")
    assert listing["running"] is None and listing["results"][0]["id"] == answer["run"]
    files = listing["results"][0]["files"]
    assert {"output.png", "config.yaml", "doodle_map.png", "doodle.png", "sheet.png"} <= set(files)
    folder = root / "runs" / answer["run"]
    assert not folder.with_name(folder.name + ".partial").exists()
    assert Image.open(folder / "output.png").size == (64, 40)
    mapped = np.asarray(Image.open(folder / "doodle_map.png"))
    assert {tuple(c) for c in mapped.reshape(-1, 3).tolist()} == {RED, BLUE}
    status, body, _ = client.request("GET", files["config.yaml"])
    assert status == 200 and b"method: doodle" in body and b"doodle_map.png" in body
    # reopening: the doodle as drawn and the style it was drawn for
    status, info = client.json("GET", f"/api/runs/{answer['run']}/studio")
    assert info["style"] == style["id"] and info["state"] == "done" and info["preset"] == "fast"
    status, body, _ = client.request("GET", info["doodle_url"])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body))), d)
    # a later server on the same folder lists the result and answers its events with its end
    from semstyle.studio.app import create_app
    from semstyle.studio.cli import BackgroundServer

    with BackgroundServer(create_app(root)) as url:
        later = Client(url)
        assert [r["id"] for r in later.json("GET", "/api/runs")[1]["results"]] == [answer["run"]]
        replay = list(later.events(f"/api/runs/{answer['run']}/events"))
        assert len(replay) == 1 and replay[0][0] == "end" and replay[0][1]["state"] == "done"


@pytest.mark.slow
def test_a_second_run_is_busy_and_stop_keeps_the_last_frame(server):
    client, root = server
    style = _toy_style(client)
    form = {"style": style["id"], "size": "64", "preset": "fast", "steps": "500"}
    status, answer = client.json(
        "POST", "/api/paint", data=form, files={"doodle": ("d.png", _doodle(style), "image/png")}
    )
    assert status == 202, answer
    status, busy = client.json(
        "POST", "/api/paint", data=form, files={"doodle": ("d.png", _doodle(style), "image/png")}
    )
    assert status == 409 and busy["error"].startswith(f"busy: a painting is already running (run {answer['run']}")
    stopped_at = None
    events = []
    for kind, e in client.events(f"/api/runs/{answer['run']}/events"):
        events.append((kind, e))
        if kind == "frame" and stopped_at is None:
            stopped_at = e["step"]
            assert client.json("POST", "/api/stop")[1] == {"stopping": answer["run"]}
    assert events[-1][1]["state"] == "stopped"
    last_step = max(e["step"] for kind, e in events if kind == "progress" and e["kind"] == "step")
    assert stopped_at <= last_step < 500
    folder = root / "runs" / answer["run"]
    assert (folder / "output.png").is_file() and not folder.with_name(folder.name + ".partial").exists()
    result = client.json("GET", "/api/runs")[1]["results"][0]
    assert result["id"] == answer["run"] and result["state"] == "stopped"
    # the server is free again; this time over a photo (doodle-with-content mode): the doodle takes the photo's
    # size, which the run needs, and the photo is the content
    status, photo = client.json(
        "POST", "/api/photos", files={"photo": ("p.jpg", _png(np.full((60, 96, 3), 90)), "image/png")}
    )
    status, again = client.json(
        "POST",
        "/api/paint",
        data={**form, "steps": "1", "photo": photo["id"]},
        files={"doodle": ("d.png", _doodle(style), "image/png")},
    )
    assert status == 202, again
    assert _run_to_end(client, again["run"])[-1][1]["state"] == "done"
    folder = root / "runs" / again["run"]
    assert Image.open(folder / "doodle_map.png").size == (96, 60) and Image.open(folder / "output.png").size == (64, 40)
    status, body, _ = client.request("GET", f"/api/runs/{again['run']}/files/config.yaml")
    assert f"photos/{photo['id']}/photo.png".encode() in body and b"init: content" in body


def test_paint_refuses_bad_requests_before_running(server):
    client, root = server
    style = _toy_style(client)
    empty = _png(np.zeros((40, 64, 4)), "RGBA")
    photo = client.json("POST", "/api/photos", files={"photo": ("sq.png", _png(np.zeros((64, 64, 3))), "image/png")})[1]
    for data, doodle, status_code, message in [
        ({"style": style["id"], "size": "64"}, empty, 400, "doodle: nothing is painted"),
        ({"style": "nope", "size": "64"}, _doodle(style), 404, "style nope: not found"),
        ({"style": style["id"], "size": "5000"}, _doodle(style), 400, "size: must be an integer from 32 to 1024"),
        ({"style": style["id"], "size": "64", "preset": "ultra"}, _doodle(style), 400, "preset: 'ultra' is not one"),
        ({"style": style["id"], "size": "64"}, b"GIF89a broken", 400, "doodle: "),
        (
            {"style": style["id"], "size": "64", "photo": photo["id"]},
            _doodle(style),
            400,
            "doodle: is 64x40 but the photo is 64x64; the doodle must have the photo's shape",
        ),
    ]:
        status, err = client.json("POST", "/api/paint", data=data, files={"doodle": ("d.png", doodle, "image/png")})
        assert status == status_code and err["error"].startswith(message), (data, err)
    assert not any((root / "runs").iterdir()) and not any((root / "inputs").iterdir())  # nothing started or kept
