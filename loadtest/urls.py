"""The app's URLs plus the baseline view, for load-test servers (see loadtest.settings)."""

from django.urls import path

from loadtest.baseline import ping
from shop.urls import urlpatterns as shop_urlpatterns

urlpatterns = [*shop_urlpatterns, path("loadtest/ping", ping, name="loadtest-ping")]
