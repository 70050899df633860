"""The module's page and HTTP API (Starlette): it only asks and tells through the `EngineLink`.

Routes (docs/web.md has the full reference):
- `GET /` the page, `GET /static/...` its files (shipped in the package, no CDN);
- `GET /api/state` the state (`web.snapshot`), `GET /api/board` the panel and the control ranges,
  `WS /api/ws` the state pushed as it changes; the page also sends its controls there
  (`{"id": n, "controls": {...}}`, answered `{"ack": n, "applied": {...}}` or `{"ack": n,
  "error": ..., "field": ...}`), the same checks as `POST /api/controls` without an HTTP
  request per move;
- `POST /api/controls` `{"follow": 0.3, ...}`, `POST /api/press` `{"button": "randomize_a"}`,
  `POST /api/fill` `{"high": true}`;
- presets: `GET /api/presets`, `POST /api/presets/{slot}/save|recall|rename`,
  `DELETE /api/presets/{slot}`, `GET /api/presets/{slot}/export`, `POST /api/presets/import`;
- `GET /api/backup`, `POST /api/restore` (the state directory as one zip);
- `POST /api/loop?slot=A|B` a drum MIDI loop made latent A or B of the current preset.

A bad request is a 4xx `{"error": text, "field": name, "allowed": ...}`. Every write checks the
origin (a page of another site cannot drive the module), and with a pairing token (listening
beyond 127.0.0.1) every request needs it (cookie `grooverack_token`, header `X-Grooverack-Token`,
or `?token=` once on the page, which sets the cookie).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from grooverack.boards.board import Board
from grooverack.boards.drawing import label
from grooverack.config import BUTTONS, CONTROLS, SCHEMA, Settings
from grooverack.errors import ConfigError
from grooverack.state import StateStore, state_dir
from grooverack.voices import VOICE_GROUPS, VOICE_NAMES
from grooverack.web import library
from grooverack.web.library import Refused
from grooverack.web.link import Busy, LinkSeam, Snapshot
from grooverack.web.snapshot import StateJson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger(__name__)

REPLY_S = 2.0            # the longest a request waits for the engine's thread
PUSH_S = 0.01            # the websocket looks for a new snapshot this often (the relay sends
#                          one at most every relay.PUSH_S, and at once after a command)
BODY_MAX = library.BACKUP_MAX_BYTES
TOKEN_COOKIE = "grooverack_token"
TOKEN_HEADER = "x-grooverack-token"
# what /api/controls takes: the panel's controls, the style, the record mode, each voice's mute
SETTABLE: tuple[str, ...] = (*CONTROLS, "genre", "record", *(f"mute.{v}" for v in VOICE_NAMES))
PRESSABLE: tuple[str, ...] = tuple(b for b in BUTTONS if b != "shift")
STATIC = resources.files("grooverack.web") / "static"


def refuse(field: str, message: str, allowed: str = "", status: int = 422) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "field": field}
    if allowed:
        body["allowed"] = allowed
    return JSONResponse(body, status_code=status)


def board_description(board: Board | None) -> dict[str, Any]:
    """The panel as the board file declares it, for the page to draw, and the controls' ranges
    from the config schema."""
    controls = {
        name: {"label": label(name) if name in ("follow", "morph", "uncertainty", "density",
                                                  "tempo", "groove_velocity", "groove_offset")
               else name.replace("density.", "density ").replace("_", " ").upper(),
               "low": SCHEMA[name].low, "high": SCHEMA[name].high, "unit": SCHEMA[name].unit,
               "default": SCHEMA[name].default, "doc": SCHEMA[name].doc}
        for name in CONTROLS}
    out: dict[str, Any] = {"name": "", "kind": "", "description": "", "knobs": [],
                           "buttons": [], "leds": [], "inputs": [], "outputs": [],
                           "controls": controls, "groups": {g: list(v) for g, v in
                                                            VOICE_GROUPS.items()},
                           "record_modes": list(SCHEMA["record"].choices or ())}
    if board is None:
        return out
    out.update(name=board.name, kind=board.kind, description=board.description)
    pot_control = {c.pot: c for c in board.controls.values()}
    for pot in sorted(board.pots.values(), key=lambda p: (p.chip, p.channel)):
        control = pot_control.get(pot.name)
        out["knobs"].append({"pot": pot.name, "control": control.name if control else None,
                             "label": label(control.name if control else pot.name),
                             "cv": bool(control and control.cv),
                             "shift": board.shift_pots.get(pot.name, "")})
    for item in board.gpio_inputs.values():
        if item.role == "button" and item.action and item.action != "shift":
            out["buttons"].append({"name": item.name, "action": item.action,
                                   "label": label(item.name),
                                   "shift": board.shift_buttons.get(item.name, "")})
        elif item.role != "button":
            out["inputs"].append(label(item.name))
    out["inputs"] += [label(i.name) for i in board.inputs.values()]
    out["leds"] = [{"name": o.name.removesuffix("_led"), "label": label(o.name.removesuffix("_led"))}
                   for o in board.gpio_outputs.values() if o.kind == "led"]
    out["outputs"] = ([label(o.name) for o in board.outputs.values()]
                      + [label(o.name) for o in board.gpio_outputs.values() if o.kind != "led"])
    return out


class Guard(BaseHTTPMiddleware):
    """The pairing token (when set) on every request, the same origin on every write."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token is not None and not self._paired(request):
            return refuse("token", "this module needs its pairing token (printed on its "
                                   "console): open the page as /?token=...", status=401)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin(request):
            return refuse("origin", f"a write from {request.headers.get('origin')!r}: only "
                                    "this page may change the module", status=403)
        response = await call_next(request)
        given = request.query_params.get("token")
        if self.token is not None and given and hmac.compare_digest(given, self.token):
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        return response

    def _paired(self, request: Request) -> bool:
        assert self.token is not None
        for given in (request.cookies.get(TOKEN_COOKIE), request.headers.get(TOKEN_HEADER),
                      request.query_params.get("token")):
            if given and hmac.compare_digest(given, self.token):
                return True
        return False


def same_origin(request: Request | WebSocket) -> bool:
    """A browser's write from this page (Origin is this host), or a script's (no Origin)."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


class WebApp:
    """The routes over one link, one board and the state directory."""

    def __init__(self, link: LinkSeam, settings: Settings, board: Board | None,
                 token: str | None = None) -> None:
        self.link, self.settings, self.board, self.token = link, settings, board, token
        self.store = StateStore(state_dir(settings))
        self.names = library.PresetNames(self.store)
        self.json = StateJson()
        self.board_json = board_description(board)
        # the output each voice plays on (0: none), as the player maps them: the page's sound
        # plays what the jacks play (one voice per output and step, the louder; none unpatched)
        count = int(settings["outputs.count"])
        self.board_json["voice_outputs"] = [
            out if 0 < (out := int(settings[f"map.{v}"])) <= count else 0 for v in VOICE_NAMES]
        self._runner: Any = None

    # --- helpers -------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot | None:
        return self.link.latest

    def state_text(self) -> str:
        snap = self.snapshot()
        if snap is None:
            return "{}"
        return self.json.text(snap, names=self.names.names, faults=self.link.fault_counts())

    async def ask(self, kind: str, *args: Any) -> Any:
        """A command for the engine's thread; its result once applied."""
        if not self.link.ready:
            raise Busy("the module is starting")
        future = self.link.submit(kind, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), REPLY_S)
        except TimeoutError:
            self.link.forget(future)
            raise

    async def body_json(self, request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Refused("body", f"the request body is not JSON ({exc})") from None

    async def body_bytes(self, request: Request, limit: int) -> bytes:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limit:
            raise Refused("file", f"{size} bytes; allowed at most {limit}")
        data = await request.body()
        if len(data) > limit:
            raise Refused("file", f"{len(data)} bytes; allowed at most {limit}")
        if not data:
            raise Refused("file", "the request has no file")
        return data

    def slot(self, request: Request) -> int:
        text = request.path_params.get("slot", "")
        return library.check_slot("slot", int(text) if str(text).isdigit() else text)

    # --- routes -----------------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    async def state(self, request: Request) -> Response:
        return Response(self.state_text(), media_type="application/json")

    async def board_info(self, request: Request) -> Response:
        return JSONResponse(self.board_json)

    async def controls(self, request: Request) -> Response:
        body = await self.body_json(request)
        try:
            applied = await self.set_controls(body)
        except ControlRefused as exc:
            return refuse(exc.field, str(exc), exc.allowed)
        return JSONResponse({"applied": applied})

    async def set_controls(self, body: Any) -> dict[str, Any]:
        """Control -> value, each checked (`ControlRefused` naming the first bad one), then all
        in the inbox at once (one loop pass applies them together); the values applied."""
        if not isinstance(body, dict) or not body:
            raise ControlRefused("body", "expected a JSON object of control -> value, e.g. "
                                         '{"follow": 0.3}')
        checked: dict[str, Any] = {}
        snap = self.snapshot()
        for name, value in body.items():
            if name not in SETTABLE:
                raise ControlRefused(str(name), f"unknown control {name!r}",
                                     "one of " + ", ".join(SETTABLE))
            if name == "genre" and snap is not None and value not in snap.styles:
                raise ControlRefused(name, f"style {value!r} is not offered by this model",
                                     "one of " + ", ".join(snap.styles))
            try:
                checked[name] = SCHEMA[name].validate(value, "the request")
            except ConfigError as exc:
                raise ControlRefused(name, str(exc), SCHEMA[name].allowed()) from None
        results = await asyncio.gather(*(self.ask("control", name, value)
                                         for name, value in checked.items()))
        return dict(zip(checked, results, strict=True))

    async def press(self, request: Request) -> Response:
        body = await self.body_json(request)
        button = body.get("button") if isinstance(body, dict) else None
        if button not in PRESSABLE:
            return refuse("button", f"button {button!r} is not one of the panel's",
                          "one of " + ", ".join(PRESSABLE))
        result = await self.ask("press", button)
        return JSONResponse({"button": button, "result": result})

    async def fill(self, request: Request) -> Response:
        body = await self.body_json(request)
        high = body.get("high") if isinstance(body, dict) else None
        if not isinstance(high, bool):
            return refuse("high", f"high = {high!r}", "true (the fill gate high) or false")
        return JSONResponse({"fill": await self.ask("fill", high)})

    async def presets(self, request: Request) -> Response:
        snap = self.snapshot()
        saved = sorted(snap.presets) if snap is not None else []
        return JSONResponse({"slot": snap.preset_slot if snap else 0,
                             "saved": [{"slot": n, "name": self.names.names.get(n, "")}
                                       for n in saved]})

    async def preset_action(self, request: Request) -> Response:
        slot = self.slot(request)
        action = request.path_params["action"]
        snap = self.snapshot()
        if action == "save":
            data = await self.ask("save", slot)
            # on disk now (the state keeper would within a second): the list, export and a
            # backup see it at once
            await asyncio.to_thread(self.store.save_preset, slot, library.preset_from_engine(data))
            body = await request.body()
            if body:
                data = await self.body_json(request)
                if isinstance(data, dict) and "name" in data:
                    await asyncio.to_thread(self.names.set, slot,
                                            library.check_name(data["name"]))
        elif action == "recall":
            if snap is not None and slot not in snap.presets:
                return refuse("slot", f"preset {slot} is empty",
                              "a saved slot: " + ", ".join(map(str, sorted(snap.presets))),
                              status=404)
            await self.ask("recall", slot)
        elif action == "rename":
            data = await self.body_json(request)
            name = library.check_name(data.get("name") if isinstance(data, dict) else None)
            if snap is not None and slot not in snap.presets:
                return refuse("slot", f"preset {slot} is empty", status=404)
            await asyncio.to_thread(self.names.set, slot, name)
        else:
            return refuse("action", f"unknown action {action!r}", "save, recall, rename",
                          status=404)
        return JSONResponse({"slot": slot, "action": action})

    async def preset_delete(self, request: Request) -> Response:
        slot = self.slot(request)
        await self.ask("delete", slot)

        def remove() -> None:
            path = self.store.preset_path(slot)
            for p in (path, path.with_name(path.name + ".bak")):
                p.unlink(missing_ok=True)
            self.names.drop(slot)

        await asyncio.to_thread(remove)
        return JSONResponse({"slot": slot, "deleted": True})

    async def preset_export(self, request: Request) -> Response:
        slot = self.slot(request)
        snap = self.snapshot()
        if snap is None or slot not in snap.presets:
            return refuse("slot", f"preset {slot} is empty", status=404)
        name = self.names.names.get(slot, "")
        data = library.export_preset(slot, snap.presets[slot], name)
        return JSONResponse(data, headers={
            "content-disposition": f'attachment; filename="grooverack-preset-{slot:02d}.json"'})

    async def preset_import(self, request: Request) -> Response:
        snap = self.snapshot()
        if snap is None:
            raise Busy("the module is starting")
        data = await self.body_json(request)
        preset, name = library.import_preset(data, snap.latent_size)
        wanted = request.query_params.get("slot")
        if wanted is not None:
            slot = library.check_slot("slot", int(wanted) if wanted.isdigit() else wanted)
        else:
            free = [n for n in range(1, library.PRESET_COUNT + 1) if n not in snap.presets]
            if not free:
                return refuse("slot", "every preset slot is taken; delete one or name ?slot=",
                              status=409)
            slot = free[0]
        await self.ask("store", slot, library.engine_preset(slot, preset))
        await asyncio.to_thread(self.store.save_preset, slot, preset)
        if name:
            await asyncio.to_thread(self.names.set, slot, name)
        return JSONResponse({"slot": slot, "name": name})

    async def backup(self, request: Request) -> Response:
        data = await asyncio.to_thread(library.backup, self.store.dir)
        return Response(data, media_type="application/zip", headers={
            "content-disposition": 'attachment; filename="grooverack-state.zip"'})

    async def restore(self, request: Request) -> Response:
        data = await self.body_bytes(request, BODY_MAX)
        files = await asyncio.to_thread(library.check_backup, self.store.dir, data)
        await asyncio.to_thread(library.restore, files)
        presets = await asyncio.to_thread(library.engine_presets, self.store)
        await self.ask("presets", presets)
        if any(path.name == "performance.json" for path in files):
            performance = await asyncio.to_thread(self.store.load_performance)
            await self.ask("performance", performance)
        self.names = await asyncio.to_thread(library.PresetNames, self.store)
        return JSONResponse({"restored": len(files), "presets": sorted(presets)})

    async def loop(self, request: Request) -> Response:
        side = request.query_params.get("slot", "A").upper()
        if side not in ("A", "B"):
            return refuse("slot", f"slot = {side!r}", "A or B")
        data = await self.body_bytes(request, library.MIDI_MAX_BYTES)
        name = Path(request.headers.get("x-filename", "loop.mid")).name[:80] or "loop.mid"
        loop = await asyncio.to_thread(library.midi_loop, data, self.store.dir, name)
        z = await asyncio.to_thread(self._encode, loop)
        slot = await self.ask("latent", side.lower(), z, True)
        return JSONResponse({"slot": side, "preset": slot, "hits": loop.hits, "bars": loop.bars,
                             "name": loop.name})

    def _encode(self, loop: library.Loop) -> list[float]:
        if self._runner is None:
            from grooverack.model.runner import ModelRunner

            self._runner = ModelRunner(self.settings["model.path"] or None,
                                       self.settings["model.variant"])
        return library.encode_loop(loop, self._runner)

    async def push(self, websocket: WebSocket) -> None:
        if not same_origin(websocket) or (self.token is not None and not self._ws_paired(
                websocket)):
            await websocket.close(code=1008)
            return
        await websocket.accept()
        lock = asyncio.Lock()  # one message at a time on the socket
        receiver = asyncio.create_task(self._receive(websocket, lock))
        seen = -1
        try:
            while not receiver.done():
                snap = self.snapshot()
                if snap is not None and snap.serial != seen:
                    seen = snap.serial
                    text = self.state_text()
                    async with lock:
                        await websocket.send_text(text)
                await asyncio.sleep(PUSH_S)
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            receiver.cancel()

    async def _receive(self, websocket: WebSocket, lock: asyncio.Lock) -> None:
        """The page's controls over the socket: each message answered with its `ack`."""
        tasks: set[asyncio.Task[None]] = set()  # kept until done (the loop holds them weakly)
        try:
            while True:
                message = await websocket.receive_text()
                task = asyncio.create_task(self._ws_controls(websocket, lock, message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (WebSocketDisconnect, RuntimeError):
            return

    async def _ws_controls(self, websocket: WebSocket, lock: asyncio.Lock, text: str) -> None:
        answer: dict[str, Any]
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            message, answer = {}, {"error": f"not JSON ({exc})", "field": "message"}
        else:
            answer = {}
        ident = message.get("id") if isinstance(message, dict) else None
        if not answer:
            try:
                if not isinstance(message, dict) or "controls" not in message:
                    raise ControlRefused("message", "expected {\"id\": n, \"controls\": "
                                                    "{\"follow\": 0.3}}")
                answer = {"applied": await self.set_controls(message["controls"])}
            except ControlRefused as exc:
                answer = {"error": str(exc), "field": exc.field, "allowed": exc.allowed}
            except Busy as exc:
                answer = {"error": str(exc), "field": "module"}
            except TimeoutError:
                answer = {"error": "the module did not answer in time", "field": "module"}
            except (ValueError, ConfigError) as exc:
                answer = {"error": str(exc), "field": "request"}
        try:
            async with lock:
                await websocket.send_text(json.dumps({"ack": ident, **answer}))
        except (WebSocketDisconnect, RuntimeError):
            pass

    def _ws_paired(self, websocket: WebSocket) -> bool:
        assert self.token is not None
        given = websocket.cookies.get(TOKEN_COOKIE) or websocket.query_params.get("token") or ""
        return hmac.compare_digest(given, self.token)


class ControlRefused(Refused):
    """A control the request may not set (or a value out of its range), with what is allowed."""

    def __init__(self, field: str, message: str, allowed: str = "") -> None:
        super().__init__(field, message)
        self.allowed = allowed


def errors(handler: Callable[[Request], Awaitable[Response]]
           ) -> Callable[[Request], Awaitable[Response]]:
    """What a route refuses becomes a 4xx naming the field; a busy module a 503."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Refused as exc:
            return refuse(exc.field, str(exc))
        except Busy as exc:
            return refuse("module", str(exc), status=503)
        except TimeoutError:
            return refuse("module", "the module did not answer in time", status=503)
        except (ValueError, ConfigError) as exc:  # an engine refusal (a preset of another model)
            return refuse("request", str(exc), status=409)

    return wrapped


def make_app(link: LinkSeam, settings: Settings, board: Board | None = None, *,
             token: str | None = None) -> Starlette:
    web = WebApp(link, settings, board, token)
    routes: list[Any] = [
        Route("/", web.page),
        Route("/api/state", errors(web.state)),
        Route("/api/board", errors(web.board_info)),
        Route("/api/controls", errors(web.controls), methods=["POST"]),
        Route("/api/press", errors(web.press), methods=["POST"]),
        Route("/api/fill", errors(web.fill), methods=["POST"]),
        Route("/api/presets", errors(web.presets)),
        Route("/api/presets/import", errors(web.preset_import), methods=["POST"]),
        Route("/api/presets/{slot}/export", errors(web.preset_export)),
        Route("/api/presets/{slot}/{action}", errors(web.preset_action), methods=["POST"]),
        Route("/api/presets/{slot}", errors(web.preset_delete), methods=["DELETE"]),
        Route("/api/backup", errors(web.backup)),
        Route("/api/restore", errors(web.restore), methods=["POST"]),
        Route("/api/loop", errors(web.loop), methods=["POST"]),
        WebSocketRoute("/api/ws", web.push),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard, token=token)])
    app.state.web = web
    return app
