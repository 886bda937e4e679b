"""What every response carries whatever the view did, and who the client is behind a proxy.

- `X-Content-Type-Options: nosniff`: a browser never guesses a JSON or CSV body to be HTML.
- `Cache-Control: no-store` unless the response chose its own policy: API answers are custody
  records for one bearer (some carry a token or a `whsec_` secret), and no cache, shared or
  private, should keep them. Static files (the API docs' assets) say their own (`no-cache` with a
  validator), so they are left as they are.
- `X-Frame-Options: DENY`: nothing here is meant to be framed.
- Behind `Settings.trusted_proxies` reverse proxies, werkzeug's ProxyFix takes the client address
  and scheme from `X-Forwarded-For`/`-Proto`, trusting only that many hops; with 0 (the default)
  the headers are ignored, since anyone could send them.
"""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from ..settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies > 0:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response
