"""Service configuration, read from the environment (prefix ``MATTESERVE_``).

The names are part of the deployment contract (docker-compose, k8s and the docs set them);
see the README's configuration table.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_SESSION_TTL_S = 30 * 24 * 3600  # Redis and the answers' expiry dates take far more; users need less
REDIS_SCHEMES = ("redis", "rediss", "unix")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="MATTESERVE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    redis_url: str | None = None
    backend: Literal["local", "triton"] = "local"
    triton_url: str = "127.0.0.1:8001"
    triton_timeout_s: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)
    model_repository: Path = REPO_ROOT / "triton_repo"
    api_keys: str | None = None
    allow_anonymous: bool | None = None
    session_ttl_s: int = Field(1800, ge=1, le=MAX_SESSION_TTL_S)
    max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=64 * 64)
    max_concurrent_pixels: int = Field(80_000_000, ge=64 * 64)
    max_prompts_per_round: int = Field(64, ge=1)
    max_rounds_per_session: int = Field(100, ge=1)
    max_session_mark_points: int = Field(50_000, ge=64)
    rate_limit_per_minute: int = Field(600, ge=0)
    auth_failures_per_minute: int = Field(30, ge=0)
    ws_allowed_origins: str | None = None
    redis_timeout_s: float = Field(2.0, gt=0, le=300, allow_inf_nan=False)
    # The lock lease travels to Redis in whole milliseconds.
    round_lock_timeout_s: float = Field(15.0, ge=0.01, le=3600, allow_inf_nan=False)
    round_wait_timeout_s: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)
    inference_threads: int = Field(2, ge=1)
    classical_max_side: int = Field(640, ge=64)
    dfimat_refiner: Literal["mrn", "mgmatting"] = "mrn"
    instance_matting: Literal["instmatt", "instmatt_official"] = "instmatt"
    instance_min_score: float = Field(0.5, ge=0.0, le=1.0)
    smat_networks: Literal["ours", "official"] = "ours"
    official_max_side: int = Field(1280, ge=64)
    progressive_merge: bool = True
    native_refinement: bool = False
    native_refinement_max_pixels: int = Field(400_000, ge=1_000)
    cutout_max_pixels: int = Field(4_000_000, ge=64 * 64)
    auto_routes: str | None = None
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"

    @field_validator("api_keys")
    @classmethod
    def _keys_parse(cls, value: str | None) -> str | None:
        if value:
            seen: set[str] = set()
            for key, user in _key_pairs(value):
                if not key or not user:
                    raise ValueError("MATTESERVE_API_KEYS must be comma-separated key:user pairs")
                if key in seen:
                    raise ValueError("MATTESERVE_API_KEYS gives one key to two users")
                seen.add(key)
        return value

    @field_validator("host")
    @classmethod
    def _host_form(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME.fullmatch(value):
                raise ValueError("must be an IP address or a host name") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in REDIS_SCHEMES:
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @cached_property
    def key_to_user(self) -> dict[str, str]:
        """``MATTESERVE_API_KEYS`` as a key -> user id map (spaces around ``,`` and ``:`` dropped)."""
        return dict(_key_pairs(self.api_keys)) if self.api_keys else {}

    @model_validator(mode="after")
    def _budget_holds_the_largest_image(self) -> Settings:
        if self.max_concurrent_pixels < self.max_pixels:
            raise ValueError("MATTESERVE_MAX_CONCURRENT_PIXELS must be at least MATTESERVE_MAX_PIXELS")
        return self

    @model_validator(mode="after")
    def _repository_exists(self) -> Settings:
        # The default may be absent (an installed package serves the classical engine only); a
        # repository that was named must be there.
        if "model_repository" in self.model_fields_set and not self.model_repository.is_dir():
            raise ValueError(
                f"MATTESERVE_MODEL_REPOSITORY: {str(self.model_repository)!r} is not a directory"
            )
        return self

    @cached_property
    def allowed_origins(self) -> frozenset[str]:
        """``MATTESERVE_WS_ALLOWED_ORIGINS`` as a set of origins (``*`` = any)."""
        if not self.ws_allowed_origins:
            return frozenset()
        return frozenset(o.strip().rstrip("/") for o in self.ws_allowed_origins.split(",") if o.strip())

    @property
    def anonymous_allowed(self) -> bool:
        """Anonymous access: explicit setting, else only with no keys and a loopback listener."""
        if self.allow_anonymous is not None:
            return self.allow_anonymous
        return not self.key_to_user and _is_loopback(self.host)


class InvalidSettings(ValueError):
    """The environment holds a value the service cannot run with; the message names each
    variable, what it must be and what it was, one per line."""


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment, ``overrides`` (e.g. command-line options) taking
    precedence; raises :class:`InvalidSettings` instead of pydantic's error so that a command
    can say which variable is wrong without a traceback."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["loc"]:  # a field's own rule; a rule across fields has no location
                variable = "MATTESERVE_" + "_".join(str(part) for part in error["loc"]).upper()
                message = f"{variable}: {message} (got {error['input']!r})"
            lines.append(message)
        raise InvalidSettings("\n".join(lines)) from None


def _key_pairs(spec: str) -> list[tuple[str, str]]:
    """``key:user,key:user`` -> [(key, user)], spaces around each part dropped ("" when absent)."""
    pairs = (pair.partition(":") for pair in spec.split(","))
    return [(key.strip(), user.strip() if sep else "") for key, sep, user in pairs]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
