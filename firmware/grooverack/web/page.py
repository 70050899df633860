"""The page's process: uvicorn + Starlette over a `relay.RemoteLink` (spawned by `grooverack web`).

Started before the module builds its engine (a spawned process: nothing of the module's threads is
inherited); it ends when the module's process closes the pipe, or on SIGTERM/SIGINT as uvicorn
handles them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

from grooverack.config import Settings


@dataclass(frozen=True)
class PageConfig:
    settings: Settings
    board: str          # the board file's path
    host: str
    port: int
    token: str | None


def page_process(conn: Connection, config: PageConfig) -> None:
    import uvicorn
    from grooverack.boards.board import load_board
    from grooverack.web.app import make_app
    from grooverack.web.relay import RemoteLink

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    link = RemoteLink(conn)
    app = make_app(link, config.settings, load_board(config.board), token=config.token)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port,
                                           log_level="warning", ws="websockets-sansio",
                                           lifespan="off", access_log=False))

    def end_with_the_module() -> None:
        link.closed.wait()
        server.should_exit = True

    threading.Thread(target=end_with_the_module, daemon=True).start()
    server.run()
