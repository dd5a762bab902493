"""The studio's ASGI app (Starlette): one page, a JSON API, and server-sent events for a run's progress.

API (every error is ``{"error": "<one line>"}``: 400 bad input, 404 unknown, 409 busy, 411/413 upload size):

- ``GET  /api/styles``: bundled paintings and the styles made so far (painting, map, palette with names);
- ``POST /api/styles``: form ``bundled=<name>`` or file ``image`` [+ file ``map``], ``regions`` (automatic
  maps, 2-8): makes a style and answers its palette;
- ``PUT  /api/styles/<id>/names``: ``{"names": [...]}`` renames the palette's regions;
- ``POST /api/photos``: file ``photo``: an underlay photo (doodle-with-content mode);
- ``POST /api/photos/<id>/automap``: ``style``, ``regions``: the painting and the photo segmented together (as
  ``--auto-maps``): a new style whose ``photo_map_url`` is a starting doodle for the photo;
- ``POST /api/paint``: file ``doodle`` (PNG; transparent = unpainted), ``style``, ``size``, ``preset``
  (fast | balanced | best), optional ``photo``, ``steps``: snaps the doodle to the palette and starts the run
  (202 ``{"run", "warnings"}``), or 409 ``{"error": "busy: ..."}`` while another runs;
- ``GET  /api/runs/<id>/events``: ``text/event-stream`` of ``progress`` (every engine event), ``frame`` (the
  current image as a JPEG data URL, every few steps) and one final ``end`` (``done`` | ``stopped`` | ``error``);
- ``POST /api/stop``: stop the current run at its next step (it keeps its last frame as ``output.png``);
- ``GET  /api/runs``: the current run and the finished ones; ``GET /api/runs/<id>/files/<name>`` downloads.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import SemstyleError, check
from . import store as st
from .jobs import Busy, Job, Runner

STATIC = Path(__file__).resolve().parent / "static"
# A form carries at most a painting and its map (or a doodle) plus a few short fields.
MAX_REQUEST_BYTES = 2 * st.MAX_UPLOAD_BYTES + 2**20
MAX_FIELD_BYTES = 4096


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _form(request: Request):
    """The request's multipart form, refused before it is read when it is too large or of unknown length."""
    length = request.headers.get("content-length")
    if length is None:
        raise HTTPError(411, "upload: the request has no Content-Length; send the file as a normal form upload")
    if not length.isdigit() or int(length) > MAX_REQUEST_BYTES:
        raise HTTPError(
            413,
            f"upload: the request is {int(length) / 2**20:.1f} MB; the limit is "
            f"{st.MAX_UPLOAD_BYTES // 2**20} MB per image"
            if length.isdigit()
            else "upload: bad Content-Length",
        )
    try:
        return await request.form(max_files=3, max_fields=16, max_part_size=MAX_FIELD_BYTES)
    except Exception as e:  # python-multipart / Starlette parse errors: one line
        raise HTTPError(400, f"upload: not a valid form ({' '.join(str(e).split()) or type(e).__name__})") from None


async def _file(form, name: str, what: str, required: bool = True) -> bytes | None:
    item = form.get(name)
    if not isinstance(item, UploadFile):
        if required:
            raise HTTPError(400, f"{what}: no file was sent (form field {name!r})")
        return None
    data = await item.read(st.MAX_UPLOAD_BYTES + 1)
    if len(data) > st.MAX_UPLOAD_BYTES:
        raise HTTPError(413, f"{what}: the file is larger than {st.MAX_UPLOAD_BYTES // 2**20} MB")
    return data


def _int(form, name: str, default: int | None = None) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return default
    check(isinstance(value, str) and value.strip().lstrip("-").isdigit(), f"{name}: must be an integer, got {value!r}")
    return int(value)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _hostname(netloc: str) -> str:
    """``"127.0.0.1:8765"`` -> ``"127.0.0.1"``, ``"[::1]:8765"`` -> ``"::1"``."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class LocalOnly:
    """ASGI middleware for a server on this machine: a request whose ``Host`` is not one of ``hosts`` is refused
    (a web page cannot reach the studio by pointing a domain of its own at 127.0.0.1: DNS rebinding), and so is a
    POST/PUT from a page of another origin (a web page the user visits cannot upload or start runs: CSRF).
    Scripts that send no ``Origin`` are served."""

    def __init__(self, app, hosts=LOOPBACK_HOSTS):
        self.app, self.hosts = app, {h.lower() for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
            host = headers.get("host", "")
            reason = None
            if _hostname(host) not in self.hosts:
                reason = f"host {host!r}: the studio answers only as {', '.join(sorted(self.hosts))}"
            elif scope["method"] not in ("GET", "HEAD", "OPTIONS") and "origin" in headers:
                origin = headers["origin"]
                if origin.split("://", 1)[-1].rstrip("/").lower() != host.lower():
                    reason = f"origin {origin!r}: requests that change the studio must come from its own page"
            if reason is not None:
                await _error(403, reason)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def create_app(
    root: str | Path = "runs/studio",
    styles_dir: str | Path | None = None,
    frame_every: int = 5,
    poll: float = 0.1,
    hosts: tuple[str, ...] | None = LOOPBACK_HOSTS,
) -> Starlette:
    """The studio app over the folder ``root`` (made if missing); ``styles_dir`` holds the bundled paintings
    (default the bundled ``assets/styles``); a frame is sent every ``frame_every`` steps; ``hosts``: the names the
    server answers to (:class:`LocalOnly`; None: any, for a server deliberately opened to a network)."""
    store = st.Store(root, styles_dir)
    runner = Runner()

    async def page(request: Request) -> Response:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})

    async def list_styles(request: Request) -> Response:
        bundled = [{"name": n, "label": n.replace("_", " "), "url": f"/api/bundled/{n}"} for n in store.bundled_names()]
        return JSONResponse(
            {
                "bundled": bundled,
                "styles": store.styles(),
                "presets": list(st.PRESETS),
                "max_size": st.MAX_SIZE,
                "min_size": st.MIN_SIZE,
                "canvas": st.CANVAS_LONG_SIDE,
            }
        )

    async def bundled_file(request: Request) -> Response:
        return FileResponse(store._bundled_file(request.path_params["name"]))

    async def make_style(request: Request) -> Response:
        form = await _form(request)
        try:
            regions = _int(form, "regions", 4)
            bundled = form.get("bundled")
            if bundled:
                check(isinstance(bundled, str), "bundled: must be a painting's name")
                style = await asyncio.to_thread(store.add_bundled, bundled, regions)
            else:
                image = await _file(form, "image", "style image")
                map_bytes = await _file(form, "map", "style map", required=False)
                style = await asyncio.to_thread(store.add_upload, image, map_bytes or None, regions)
        finally:
            await form.close()
        return JSONResponse(style.describe())

    async def get_style(request: Request) -> Response:
        return JSONResponse(store.style(request.path_params["style"]).describe())

    async def style_file(request: Request) -> Response:
        style = store.style(request.path_params["style"])
        name = request.path_params["name"]
        check(name in ("style.png", "map.png", "photo_map.png"), f"file: {name!r} is not one a style offers")
        check((style.folder / name).is_file(), f"style {style.id}: has no {name}", st.NotFound)
        return FileResponse(style.folder / name)

    async def rename(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPError(400, "names: the body is not JSON") from None
        check(isinstance(body, dict), 'names: expected {"names": [...]}')
        return JSONResponse(store.rename_regions(request.path_params["style"], body.get("names")).describe())

    async def add_photo(request: Request) -> Response:
        form = await _form(request)
        try:
            data = await _file(form, "photo", "photo")
        finally:
            await form.close()
        return JSONResponse(await asyncio.to_thread(store.add_photo, data))

    async def joint_map(request: Request) -> Response:
        form = await _form(request)
        try:
            style = store.style(str(form.get("style") or ""))
            regions = _int(form, "regions", 4)
        finally:
            await form.close()
        joint = await asyncio.to_thread(store.add_joint, style, request.path_params["photo"], regions)
        return JSONResponse(joint.describe())

    async def photo_info(request: Request) -> Response:
        return JSONResponse(store.photo(request.path_params["photo"]))

    async def photo_file(request: Request) -> Response:
        info = store.photo(request.path_params["photo"])
        return FileResponse(store.root / "photos" / info["id"] / "photo.png")

    async def paint(request: Request) -> Response:
        # refuse at once, before reading the upload, when a run is going
        if runner.current is not None and not runner.current.finished:
            raise Busy(runner.busy_message(runner.current))
        form = await _form(request)
        try:
            data = await _file(form, "doodle", "doodle")
            style = store.style(str(form.get("style") or ""))
            photo = form.get("photo") or None
            if photo is not None:
                store.photo(str(photo))
            size = _int(form, "size", 512)
            preset = str(form.get("preset") or "balanced")
            steps = _int(form, "steps")
        finally:
            await form.close()
        doodle = await asyncio.to_thread(store.prepare_doodle, data, style, photo)
        run_id = store.new_run_id()
        _, doodle_map = store.input_paths(run_id)
        config, overrides, notes = store.run_config(run_id, style, doodle, doodle_map, size, preset, photo, steps)
        store.save_inputs(run_id, doodle)  # only once the request is known to be good
        warnings = doodle.warnings + notes
        info = {
            "style": style.id,
            "style_name": style.meta["name"],
            "photo": photo,
            "size": size,
            "preset": preset,
            "steps": steps,
            "names": style.meta["names"],
            "palette": style.meta["palette"],
            "warnings": warnings,
        }

        def finish(job: Job, state: str) -> None:
            store.finish_run(job.id, {**info, "state": state, "seconds": job.seconds})

        job = runner.start(Job(run_id, config, overrides, on_finish=finish, frame_every=frame_every))
        return JSONResponse(
            {"run": job.id, "warnings": warnings, "events": f"/api/runs/{job.id}/events"}, status_code=202
        )

    async def stop(request: Request) -> Response:
        job = runner.stop()
        return JSONResponse({"stopping": job.id if job else None})

    async def runs(request: Request) -> Response:
        cur = runner.current
        current = None
        if cur is not None and not cur.finished:
            current = {"id": cur.id, "progress": cur.progress_line(), "events": f"/api/runs/{cur.id}/events"}
        return JSONResponse({"running": current, "results": store.results()})

    async def events(request: Request) -> Response:
        run_id = st.check_id(request.path_params["run"], "run", st.RUN_ID_RE)
        job = runner.get(run_id)
        if job is None:  # a run of an earlier session: only its end
            info = store.studio_info(run_id)
            end = {"state": info.get("state", "done"), "error": None, "run": run_id, "seconds": info.get("seconds")}

            async def replay():
                yield _sse("end", end)

            return StreamingResponse(replay(), media_type="text/event-stream")

        async def stream():
            index, sent_frame = 0, 0
            yield "retry: 2000\n\n"
            while True:
                messages, frame, finished = job.snapshot(index)
                index += len(messages)
                for m in messages:
                    yield _sse("progress", m)
                if frame is not None and frame[0] != sent_frame:
                    sent_frame = frame[0]
                    last = job.last
                    yield _sse(
                        "frame",
                        {
                            "n": frame[0],
                            "scale": last.get("scale"),
                            "step": last.get("step"),
                            "image": "data:image/jpeg;base64," + base64.b64encode(frame[1]).decode(),
                        },
                    )
                if finished:
                    yield _sse("end", job.end_message())
                    return
                await asyncio.sleep(poll)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    async def run_file(request: Request) -> Response:
        run_id = st.check_id(request.path_params["run"], "run", st.RUN_ID_RE)
        path = store.run_file(run_id, request.path_params["name"])
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    async def run_info(request: Request) -> Response:
        run_id = st.check_id(request.path_params["run"], "run", st.RUN_ID_RE)
        return JSONResponse({**store.studio_info(run_id), "doodle_url": f"/api/runs/{run_id}/files/doodle.png"})

    async def semstyle_error(request: Request, exc: SemstyleError) -> Response:
        status = 409 if isinstance(exc, Busy) else 404 if isinstance(exc, st.NotFound) else 400
        return _error(status, str(exc))

    async def http_error(request: Request, exc: HTTPError) -> Response:
        return _error(exc.status, str(exc))

    async def starlette_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, f"{request.url.path}: {exc.detail}")

    routes = [
        Route("/", page),
        Route("/api/styles", list_styles, methods=["GET"]),
        Route("/api/styles", make_style, methods=["POST"]),
        Route("/api/bundled/{name}", bundled_file),
        Route("/api/styles/{style}", get_style),
        Route("/api/styles/{style}/names", rename, methods=["PUT"]),
        Route("/api/styles/{style}/{name}", style_file),
        Route("/api/photos", add_photo, methods=["POST"]),
        Route("/api/photos/{photo}", photo_info),
        Route("/api/photos/{photo}/automap", joint_map, methods=["POST"]),
        Route("/api/photos/{photo}/photo.png", photo_file),
        Route("/api/paint", paint, methods=["POST"]),
        Route("/api/stop", stop, methods=["POST"]),
        Route("/api/runs", runs),
        Route("/api/runs/{run}/events", events),
        Route("/api/runs/{run}/studio", run_info),
        Route("/api/runs/{run}/files/{name}", run_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    from starlette.middleware import Middleware

    middleware = [Middleware(LocalOnly, hosts=hosts)] if hosts is not None else []
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={SemstyleError: semstyle_error, HTTPError: http_error, HTTPException: starlette_error},
    )
    app.state.store, app.state.runner = store, runner
    return app
