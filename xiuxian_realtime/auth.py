"""Tokens and passwords, compatible with the original backend.

Tokens are JWT HS256 with the user id in claim ``id`` and a 30-day expiry, signed with
``JWT_SECRET``: a deployment can share tokens between the original and this server.
"""

from __future__ import annotations

import time

import bcrypt
import jwt


class TokenError(Exception):
    """The token is not one this server issued, or it has expired."""


class Tokens:
    def __init__(self, secret: str, expiry_days: int = 30) -> None:
        self._secret = secret
        self._expiry_s = expiry_days * 86400

    def issue(self, user_id: int, username: str = "") -> str:
        now = int(time.time())
        claims = {"id": user_id, "iat": now, "exp": now + self._expiry_s}
        if username:
            claims["username"] = username
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> int:
        """Return the user id the token was issued for.

        Only HS256 is accepted, so a token signed with "none" or an asymmetric key
        confusion cannot pass.
        """
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.PyJWTError as exc:
            raise TokenError(type(exc).__name__) from None
        user_id = claims.get("id")
        if isinstance(user_id, bool) or not isinstance(user_id, (int, float, str)):
            raise TokenError("missing id claim")
        try:
            return int(user_id)
        except ValueError:
            raise TokenError("bad id claim") from None


def hash_password(password: str) -> str:
    # bcrypt looks at the first 72 bytes only; bcrypt 5 refuses longer input, so cut it
    # explicitly as the original's Go bcrypt did implicitly.
    return bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt()).decode()


def check_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode()[:72], hashed.encode())
    except ValueError:
        return False
