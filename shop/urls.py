from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from seckill.ids import MAX_ORDER_ID
from shop import views, views_accounts, views_lab, views_shop, views_staff


class OrderIdConverter:
    """A 64-bit order id; anything larger is simply no match (404), never a database error."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number <= MAX_ORDER_ID:
            raise ValueError(value)
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(OrderIdConverter, "order_id")

urlpatterns = [
    # First: Django tries the patterns in order, and the REST API (its order endpoint above all)
    # is what a flash crowd calls; no other pattern starts with "api/v1/".
    path("api/v1/", include("seckill.api.urls")),
    path("", views.home, name="home"),
    path("sales/<int:sale_id>/", views_shop.sale_detail, name="sale"),
    path("sales/<int:sale_id>/buy/", views_shop.buy, name="buy"),
    path("orders/", views_shop.my_orders, name="my-orders"),
    path("orders/<order_id:order_id>/", views_shop.order_detail, name="order"),
    path("orders/<order_id:order_id>/pay/", views_shop.order_pay, name="order-pay"),
    path("orders/<order_id:order_id>/cancel/", views_shop.order_cancel, name="order-cancel"),
    path("accounts/signup/", views_accounts.signup, name="signup"),
    path("accounts/login/", views_accounts.ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("staff/", views_staff.dashboard, name="staff-dashboard"),
    path("staff/sales/<int:sale_id>/reset/", views_staff.reset_sale, name="staff-reset"),
    path("lab/", views_lab.lab, name="lab"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/login/", views_accounts.admin_login, name="admin-login"),  # throttled
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, not inline: no 'unsafe-inline' needed.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="shop/redoc.html"),
        name="api-redoc",
    ),
]

handler400 = "shop.error_views.bad_request"
handler403 = "shop.error_views.permission_denied"
handler404 = "shop.error_views.page_not_found"
handler500 = "shop.error_views.server_error"
