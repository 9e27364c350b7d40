"""What every route needs: the runtime, and the caller's identity from a bearer token."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import Header, HTTPException, Request

from ..auth import TokenError

if TYPE_CHECKING:
    from ..app import Runtime


def runtime(request: Request) -> "Runtime":
    return request.app.state.runtime


def bearer_user(request: Request, authorization: str | None = Header(default=None)) -> int:
    """The user id of a `Authorization: Bearer <jwt>` header, or 401."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing bearer token")
    try:
        return runtime(request).tokens.verify(authorization[7:].strip())
    except TokenError:
        raise HTTPException(401, "invalid token") from None


def optional_bearer_user(request: Request, authorization: str | None = Header(default=None)) -> int | None:
    """Like `bearer_user`, but None without an Authorization header."""
    if not authorization:
        return None
    return bearer_user(request, authorization)


def api_key(request: Request, x_api_key: str | None = Header(default=None)) -> None:
    """Services publishing events authenticate with X-API-Key (compared in constant time)."""
    expected = runtime(request).settings.api_key.get_secret_value()
    if not x_api_key or not hmac.compare_digest(x_api_key.encode(), expected.encode()):
        raise HTTPException(401, "missing or invalid X-API-Key")
