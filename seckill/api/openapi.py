"""Schema pieces the API's views share, so every error response documents the same body."""

from drf_spectacular.utils import OpenApiResponse

from seckill.api.serializers import ErrorSerializer

ERROR = OpenApiResponse(ErrorSerializer, description='{"error": {"code": "...", "message": "..."}}')
