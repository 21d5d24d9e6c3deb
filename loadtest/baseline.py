"""The ceiling's yardsticks, served by the same middleware and gunicorn as the order API.

Order placement is compared with these views' request rates, measured by the same load
generator in the same run, so a ratio says what the order path costs on top of them:

- ``/loadtest/ping``: plain Django, no Redis — the framework's own per-request work;
- ``/loadtest/floor``: a DRF ``APIView`` that parses ``{"quantity": n}`` and makes ONE
  ``EVALSHA`` of a trivial deduction script — the least any order path that must consult
  Redis once can cost.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from seckill.errors import InvalidRequest, SoldOut
from seckill.infrastructure.lua import registered_script
from seckill.placement import clean_quantity

# A key of the floor's own, never a sale's; it lives a day after its last deduction.
FLOOR_KEY = "loadtest:floor:stock"
FLOOR_STOCK = 10**15  # never runs out within any run
FLOOR_TTL_SECONDS = 86_400

# Check and deduct, as every stock script must, and nothing else.
DEDUCT = """
local left = tonumber(redis.call('GET', KEYS[1]) or ARGV[2])
local n = tonumber(ARGV[1])
if left < n then return -1 end
redis.call('SET', KEYS[1], left - n, 'EX', ARGV[3])
return left - n
"""


@require_GET
def ping(request: HttpRequest) -> JsonResponse:
    """No database, no Redis: only the framework's own per-request work."""
    return JsonResponse({"ok": True})


class FloorView(APIView):
    """DRF's request parsing and response rendering around exactly one Redis round trip.

    No authentication, permission or throttle classes: each of those would be a cost of its
    own, and the floor is what is left when an order path pays for nothing but one script.
    Bad input gets the API's error body (400 ``invalid``), Redis down its 503 ``unavailable``
    (the API's exception handler, from the settings).
    """

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    renderer_classes = [JSONRenderer]  # JSON only, as an order endpoint may be

    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise InvalidRequest('send a JSON object such as {"quantity": 1}')
        quantity = clean_quantity(request.data.get("quantity"))
        left = registered_script(DEDUCT)(
            keys=[FLOOR_KEY], args=[quantity, FLOOR_STOCK, FLOOR_TTL_SECONDS]
        )
        if left < 0:
            raise SoldOut("the floor's stock ran out")
        return Response({"left": left}, status=status.HTTP_201_CREATED)


floor = FloorView.as_view()
