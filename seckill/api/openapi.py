"""Schema pieces the API's views share, so every error response documents the same body."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions

from seckill.api.serializers import ErrorSerializer

ERROR = OpenApiResponse(ErrorSerializer, description='{"error": {"code": "...", "message": "..."}}')


class ErrorDocumentingSchema(AutoSchema):
    """Every operation documents the errors the API can really answer it with, not only those
    its view names (a live schemathesis run found 400s, 403s and "Invalid page" 404s nowhere in
    the schema): 400 where a body or a page number is read, 401/403 where a permission applies,
    404 where a path id or a page is looked up, 429 where a throttle applies, and 503 everywhere
    (Redis or the database away: seckill.api.exception_handler). The body is always the one
    error shape."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._possible_errors():
            responses.setdefault(
                code, self._get_response_for_code(ERROR, code, direction=direction)
            )
        return responses

    def get_auth(self):
        """Anonymous reads (``{}``) for permissions that allow them, as AllowAny's are."""
        auths = super().get_auth()
        anonymous_reads = any(
            getattr(p, "allows_anonymous_reads", False) for p in self.view.get_permissions()
        )
        if anonymous_reads and self.method in permissions.SAFE_METHODS and {} not in auths:
            auths.append({})
        return auths

    def _possible_errors(self) -> list[str]:
        view, listing = self.view, self._is_list_view()
        codes = []
        if self.method in ("POST", "PUT", "PATCH") or listing:
            codes.append("400")
        if not all(isinstance(p, permissions.AllowAny) for p in view.get_permissions()):
            codes += ["401", "403"]
        if "{" in self.path or listing:
            codes.append("404")
        if view.get_throttles():
            codes.append("429")
        return [*codes, "503"]
