"""The web UI: static files (ui/static) at `/`, read from the package, talking to the REST API."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"


def add_routes(app: web.Application) -> None:
    if not (STATIC_DIR / "index.html").is_file():
        return  # an install without the UI files still serves the API

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    app.router.add_static("/ui/", STATIC_DIR, follow_symlinks=False)
