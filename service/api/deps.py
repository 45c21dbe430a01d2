"""Request dependencies: the service object, authentication and rate limiting."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from service.config import Settings
from service.errors import RateLimited, Unauthorized
from service.serving import MattingService


def get_service(connection: HTTPConnection) -> MattingService:
    return connection.app.state.service


def get_settings(connection: HTTPConnection) -> Settings:
    return connection.app.state.settings


def user_for_credentials(settings: Settings, authorization: str | None, query_key: str | None) -> str:
    """Map credentials to a user id: ``Authorization: Bearer <key>``, or (for WebSockets,
    where browsers cannot set headers) the ``api_key`` query parameter. Without credentials
    the user is ``anonymous`` where anonymous access is allowed; otherwise ``Unauthorized``."""
    key = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Use 'Authorization: Bearer <api key>'.", code="invalid_authorization")
        key = value.strip()
    elif query_key:
        key = query_key
    if key is None:
        if settings.anonymous_allowed:
            return "anonymous"
        raise Unauthorized("An API key is required: send 'Authorization: Bearer <api key>'.")
    user = settings.key_to_user.get(key)
    if user is None:
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")
    return user


async def authenticate(connection: HTTPConnection, authorization: str | None, query_key: str | None) -> str:
    """The user of a request or socket (see ``user_for_credentials``). Failed attempts are
    counted per client address; past ``auth_failures_per_minute`` they get 429, so keys
    cannot be guessed at full speed."""
    settings = get_settings(connection)
    try:
        return user_for_credentials(settings, authorization, query_key)
    except Unauthorized:
        address = connection.client.host if connection.client else "unknown"
        limiter = get_service(connection).rate_limiter
        if await limiter.over(f"auth-fail:{address}", settings.auth_failures_per_minute):
            raise RateLimited(
                "Too many requests with invalid credentials from this address; wait a minute.",
                retry_after_s=limiter.seconds_left_in_window(),
            ) from None
        raise


async def enforce_rate_limit(connection: HTTPConnection, user: str) -> None:
    """Count a request of ``user``; ``RateLimited`` past ``rate_limit_per_minute``."""
    settings = get_settings(connection)
    limiter = get_service(connection).rate_limiter
    if await limiter.over(user, settings.rate_limit_per_minute):
        raise RateLimited(
            f"More than {settings.rate_limit_per_minute} requests in a minute; slow down.",
            retry_after_s=limiter.seconds_left_in_window(),
        )


async def current_user(request: Request) -> str:
    """The authenticated user of an HTTP request, after the per-user rate limit."""
    user = await authenticate(request, request.headers.get("authorization"), None)
    await enforce_rate_limit(request, user)
    return user


User = Annotated[str, Depends(current_user)]
Service = Annotated[MattingService, Depends(get_service)]
