"""Field permissions, declared on fields (`permission_classes=[...]`), not checked in bodies."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from domain.errors import Forbidden, Unauthenticated


class IsAuthenticated(BasePermission):
    message = "send a valid token as `Authorization: Bearer <token>`"
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return info.context.viewer is not None


class IsAdmin(BasePermission):
    message = "this field is for admins"
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        viewer = info.context.viewer
        if viewer is None:
            raise Unauthenticated(IsAuthenticated.message)
        if not viewer.is_admin:
            raise Forbidden(self.message)
        return True
