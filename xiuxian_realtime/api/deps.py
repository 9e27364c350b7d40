"""What every route needs: the runtime, and the caller's identity from a bearer token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Header, HTTPException, Request

from ..auth import TokenError

if TYPE_CHECKING:
    from ..app import Runtime


# These are `async def` on purpose: FastAPI runs a plain `def` dependency in a thread
# pool, a thread hop per request that costs more than the check itself.


def runtime_of(request: Request) -> "Runtime":
    return request.app.state.runtime


async def runtime(request: Request) -> "Runtime":
    return request.app.state.runtime


def _verify_bearer(request: Request, authorization: str | None) -> int:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing bearer token")
    try:
        return runtime_of(request).tokens.verify(authorization[7:].strip())
    except TokenError:
        raise HTTPException(401, "invalid token") from None


async def bearer_user(request: Request, authorization: str | None = Header(default=None)) -> int:
    """The user id of a `Authorization: Bearer <jwt>` header, or 401."""
    return _verify_bearer(request, authorization)


async def optional_bearer_user(request: Request, authorization: str | None = Header(default=None)) -> int | None:
    """Like `bearer_user`, but None without an Authorization header."""
    if not authorization:
        return None
    return _verify_bearer(request, authorization)
