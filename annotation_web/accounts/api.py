"""The token endpoint (`POST /api/auth/token/`) and the login page, both throttled."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_web.accounts import services
from annotation_web.accounts.throttles import LoginClientThrottle, LoginUserThrottle, login_wait_seconds


class WrongCredentials(APIException):
    """401 with `WWW-Authenticate: Token` (DRF would turn an AuthenticationFailed of a view without
    authenticators into a 403)."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "wrong_credentials"
    default_detail = "Unable to log in with the provided credentials."
    auth_header = "Token"


class TokenRequestSerializer(serializers.Serializer):
    # Not trimmed: "  " is a wrong user name (401), not a blank field that the schema said it accepts.
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expiry = serializers.DateTimeField(allow_null=True)


class TokenApi(APIView):
    """A new API token for a user name and password (send it as `Authorization: Token <token>`)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginClientThrottle, LoginUserThrottle]

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenResponseSerializer}, auth=[])
    def post(self, request):
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=body.validated_data["username"],
            password=body.validated_data["password"],
        )
        if user is None:
            # The throttles already counted the attempt.
            raise WrongCredentials()
        token, expiry = services.token_create(user=user)
        return Response(TokenResponseSerializer({"token": token, "expiry": expiry}).data)


class ThrottledLoginView(auth_views.LoginView):
    """Django's login page, with the same throttles as the token endpoint."""

    def post(self, request, *args, **kwargs):
        wait = login_wait_seconds(request)
        if wait is not None:
            response = HttpResponse(
                f"Too many login attempts; try again in {int(wait) + 1} seconds.",
                status=429,
                content_type="text/plain",
            )
            response["Retry-After"] = str(int(wait) + 1)
            return response
        return super().post(request, *args, **kwargs)
