"""`grooverack web`: the module on any board (default: the virtual patch on the wall clock, as
`grooverack run --board sim`; a Pi panel, an ES-9, MIDI) with its page and HTTP API (docs/web.md).

The module runs exactly as `run` runs it, through the same back-end registry
(`commands.backends`); the web server (uvicorn) runs in a process of its own (`web.page`) and
reaches the engine only through `web.relay.Relay` and the `web.link.EngineLink` the back end's
loop thread drains between its passes (a bounded inbox; a command wakes that thread). Listening beyond 127.0.0.1 needs the
pairing token printed at start.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import multiprocessing
import secrets
import socket
import sys
import time
from pathlib import Path

from grooverack import storage
from grooverack.boards.board import load_board
from grooverack.commands.backends import backend_for
from grooverack.commands.common import (
    add_common,
    add_patch_arguments,
    check_output_file,
    check_positive,
)
from grooverack.config import make_settings
from grooverack.errors import ConfigError, ModelError, SourceError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_DURATION_S = 86_400.0
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--board", metavar="NAME",
                        help="sim (the virtual patch on the wall clock, the default), any board "
                             "in hw/boards/ (Pi, es9, midi) or a TOML path")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; "
                             "0.0.0.0 = the local network, with a pairing token)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"TCP port (default {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--token", metavar="TEXT",
                        help="the pairing token to require (default: a new one when listening "
                             "beyond this machine; none on 127.0.0.1)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="keep the pairing token in FILE (made, mode 0600, when missing): "
                             "the same token across restarts (the systemd unit's)")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="stop after this long (default: until Ctrl-C)")
    add_patch_arguments(parser)
    parser.add_argument("--timing", metavar="FILE",
                        help="board sim: write scheduled vs actual time of every event (CSV), "
                             "as `grooverack run --timing` (the web benchmark's clock grid)")
    parser.add_argument("--rt", action="store_true",
                        help="SCHED_FIFO for the module's loop and writer (the web server stays "
                             "at normal priority), when permitted")
    parser.add_argument("--audio", nargs="?", const="", default=None, metavar="DEVICE",
                        help="board sim: also play the drum voices through the sound card, as "
                             "`grooverack run --audio` (DEVICE: part of an output device's name)")
    parser.add_argument("--fresh", action="store_true",
                        help="play from the defaults: the saved performance state is neither "
                             "restored nor overwritten")


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def kept_token(path: str | None) -> str:
    """A new pairing token, or the one kept in `path` (written atomically, 0600, when missing)."""
    if not path:
        return secrets.token_urlsafe(12)
    file = Path(path)
    try:
        token = file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    except OSError as exc:
        raise ConfigError(f"--token-file {file}: cannot read ({exc.strerror})") from None
    if len(token) < 8 or not token.isprintable() or " " in token:
        token = secrets.token_urlsafe(12)
        storage.atomic_write_text(file, token + "\n")
        file.chmod(0o600)
    return token


def free_port(host: str, port: int = 0) -> int:
    """`port` if it can be listened on (0: any free one); else a ConfigError naming it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there "
                              f"({exc.strerror}); allowed: a free port, or 0 for any") from None
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401  (the page's process imports it; say so here)
        import uvicorn  # noqa: F401
    except ImportError as exc:
        print(f"grooverack web: {exc}; install the web extra: pip install -e '.[web]'",
              file=sys.stderr)
        return 2
    from grooverack.web.link import EngineLink
    from grooverack.web.page import PageConfig, page_process
    from grooverack.web.relay import Relay

    launched = time.perf_counter()
    check_positive(args.duration, "--duration", MAX_DURATION_S, "seconds")
    if args.timing:
        check_output_file(args.timing, "--timing")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: allowed 0 to 65535")
    settings = make_settings(args)
    name = args.board or settings["board"]
    board = load_board(name)
    entry = backend_for(board)  # an unknown kind is refused before anything starts
    try:
        run_board = entry.load("run")
    except ImportError as exc:
        print(f"grooverack web: board {board.name} ({board.kind}): back end {entry.run} not "
              f"available ({exc})", file=sys.stderr)
        return 2
    token = args.token or (None if loopback(args.host) and not args.token_file
                           else kept_token(args.token_file))
    port = free_port(args.host, args.port)
    # the page in a process of its own, started before the engine exists (spawned: it inherits
    # none of the module's threads); the module's process keeps only the relay thread
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    page = context.Process(target=page_process, name="grooverack-web", daemon=True,
                           args=(theirs, PageConfig(settings, str(board.path), args.host, port,
                                                    token)))
    page.start()
    theirs.close()
    link = EngineLink()
    relay = Relay(link, ours)
    relay.start()
    shown = args.host if ":" not in args.host else f"[{args.host}]"
    url = f"http://{shown}:{port}/"
    print(f"grooverack web: the page at {url}" + (f"?token={token}" if token else ""),
          file=sys.stderr, flush=True)
    if token:
        print(f"grooverack web: pairing token {token} (asked for by every request from the "
              "network)", file=sys.stderr, flush=True)
    # the run's own arguments, as `grooverack run` has them
    for key, default in (("direct", False), ("out", None), ("audio", None)):
        if not hasattr(args, key):
            setattr(args, key, default)
    args.board = args.board or board.name
    args.launched = launched  # (the sim board's "ready in" line)
    try:
        return int(run_board(board, settings, args, hook=link) or 0)
    except (SourceError, ModelError) as exc:
        print(f"grooverack web: {exc}", file=sys.stderr)
        return 2
    finally:
        relay.stop()
        ours.close()  # the page's process ends with the pipe
        page.join(3.0)
        if page.is_alive():
            page.terminate()
            page.join(1.0)

