"""whitenoise's compressed, hashed static files, minus compressing the API docs' bundles.

Swagger UI and ReDoc (drf-spectacular-sidecar) are 9 MB of JavaScript and source maps: brotli
at whitenoise's level took about a minute of CPU in every ``collectstatic``, that is in every
``bin/run``, for pages a developer opens now and then. They are served uncompressed instead.
"""

from __future__ import annotations

from whitenoise.compress import Compressor
from whitenoise.storage import CompressedManifestStaticFilesStorage

UNCOMPRESSED_PREFIX = "drf_spectacular_sidecar/"


class _SkipDocsBundles(Compressor):
    def should_compress(self, filename: str) -> bool:
        return UNCOMPRESSED_PREFIX not in filename and super().should_compress(filename)


class StaticStorage(CompressedManifestStaticFilesStorage):
    def create_compressor(self, **kwargs) -> Compressor:
        return _SkipDocsBundles(**kwargs)
