"""Request dependencies: the service object, authentication and rate limiting."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from service.config import Settings
from service.errors import RateLimited, StoreUnavailable, Unauthorized
from service.serving import MattingService

log = logging.getLogger(__name__)


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


async def current_user(request: Request) -> str:
    """The authenticated user of an HTTP request, after the per-user rate limit."""
    settings = get_settings(request)
    user = user_for_credentials(settings, request.headers.get("authorization"), None)
    service = get_service(request)
    try:
        limited = await service.store.hit_rate_limit(user, settings.rate_limit_per_minute)
    except StoreUnavailable:
        log.warning("rate limiter skipped: Redis unavailable")
        limited = False
    if limited:
        raise RateLimited(
            f"More than {settings.rate_limit_per_minute} requests in a minute; slow down.",
        )
    return user


User = Annotated[str, Depends(current_user)]
Service = Annotated[MattingService, Depends(get_service)]
