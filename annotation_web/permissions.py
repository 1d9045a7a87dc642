"""Who may call an endpoint, by role. Neutral (no app of the project) so every app's views can use it; the roles
themselves are `annotation_web.accounts.models.Role`, read here through the user's `is_*` properties."""

from rest_framework.permissions import BasePermission


class IsEngineer(BasePermission):
    message = "This endpoint is for ML engineers."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_engineer)


class IsEngineerOrManager(BasePermission):
    message = "This endpoint is for ML engineers and managers."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_engineer or user.is_manager))
