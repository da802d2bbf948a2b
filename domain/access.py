"""Who may see what. Objects a caller may not see answer exactly like missing ones."""

from __future__ import annotations

from domain.errors import NotFound
from domain.records import Session, User


def can_read_session(actor: User, session: Session) -> bool:
    """Owners read their live sessions; admins read every live session."""
    if session.deleted_at is not None:
        return False
    return actor.is_admin or session.owner_id == actor.id


def can_change_session(actor: User, session: Session) -> bool:
    """Only the owner changes or deletes a session, admins included."""
    return session.deleted_at is None and session.owner_id == actor.id


def can_read_user(actor: User, user: User) -> bool:
    return actor.is_admin or actor.id == user.id


def require_changeable_session(actor: User, session: Session | None) -> Session:
    if session is None or not can_change_session(actor, session):
        raise NotFound("session not found")
    return session
