"""Session state in Redis: the only state the service keeps."""

from service.store.sessions import RoundRecord, SessionMeta, SessionStore

__all__ = ["RoundRecord", "SessionMeta", "SessionStore"]
