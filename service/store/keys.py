"""Redis key layout of a session.

Every key of a session carries the session id as a hash tag (``{sid}``), so a session lives
in one Redis Cluster slot and the Lua scripts below may touch all of its keys. The set
``ms:{sid}:keys`` lists every data key of the session, so the idle TTL can be refreshed and
a delete can remove everything without scanning the keyspace.

=========================  ==================================================================
key                        value
=========================  ==================================================================
``ms:{sid}:meta``          hash: user, width, height, model, created_at, rounds (count)
``ms:{sid}:image``         the uploaded image bytes as received (PNG/JPEG/WebP)
``ms:{sid}:rounds``        list of round records (JSON), index 0 is round 1
``ms:{sid}:alpha:{n}``     round n's alpha matte, 8-bit grayscale PNG at original size
``ms:{sid}:state:{n}``     round n's pipeline state for the next round (e.g. mask logits)
``ms:{sid}:cutout:{n}``    round n's RGBA cut-out PNG, cached on first request
``ms:{sid}:feat:{name}``   image features cached per network (e.g. ``iscn_encoder``)
``ms:{sid}:req``           hash: client request_id -> round number (safe retries)
``ms:{sid}:keys``          set of all the keys above
``ms:{sid}:lock``          the round lock (own TTL; not in the key set)
``ms:sessions``            sorted set: session id -> expiry time (active-session gauge)
``ms:rl:{user}:{minute}``  request counter for rate limiting
=========================  ==================================================================
"""

from __future__ import annotations

PREFIX = "ms"
SESSIONS_INDEX = f"{PREFIX}:sessions"


def _base(sid: str) -> str:
    return f"{PREFIX}:{{{sid}}}"


def meta(sid: str) -> str:
    return f"{_base(sid)}:meta"


def image(sid: str) -> str:
    return f"{_base(sid)}:image"


def rounds(sid: str) -> str:
    return f"{_base(sid)}:rounds"


def alpha(sid: str, n: int) -> str:
    return f"{_base(sid)}:alpha:{n}"


def state(sid: str, n: int) -> str:
    return f"{_base(sid)}:state:{n}"


def cutout(sid: str, n: int) -> str:
    return f"{_base(sid)}:cutout:{n}"


def features(sid: str, name: str) -> str:
    return f"{_base(sid)}:feat:{name}"


def requests(sid: str) -> str:
    return f"{_base(sid)}:req"


def key_set(sid: str) -> str:
    return f"{_base(sid)}:keys"


def lock(sid: str) -> str:
    return f"{_base(sid)}:lock"


def session_pattern(sid: str) -> str:
    """A SCAN pattern matching every key of the session (used by tests and tooling)."""
    return f"{PREFIX}:{{{sid}}}:*"


def rate(user: str, minute: int) -> str:
    return f"{PREFIX}:rl:{user}:{minute}"
