from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from annotation_web.accounts.models import ProjectMembership, User


class MembershipInline(admin.TabularInline):
    """The projects a user acts on (every role, within what the role allows)."""

    model = ProjectMembership
    extra = 0


@admin.register(User)
class PlatformUserAdmin(UserAdmin):
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Role", {"fields": ("role",)}))
    list_display = ("username", "role", "is_active", "last_login")
    list_filter = ("role", "is_active")
    inlines = [MembershipInline]
