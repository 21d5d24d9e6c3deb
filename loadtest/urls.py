"""The app's URLs plus the yardstick views, for load-test servers (see loadtest.settings)."""

from django.urls import path

from loadtest.baseline import floor, ping
from shop.urls import urlpatterns as shop_urlpatterns

urlpatterns = [
    *shop_urlpatterns,
    path("loadtest/ping", ping, name="loadtest-ping"),
    path("loadtest/floor", floor, name="loadtest-floor"),
]
