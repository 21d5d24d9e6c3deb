from django.urls import path

from seckill.api import lab_views, views

app_name = "api"

urlpatterns = [
    # First: the flash crowd's endpoint (patterns are tried in order; none of the others match it)
    path("sales/<int:pk>/orders/", views.PlaceOrderView.as_view(), name="place-order"),
    path("auth/register/", views.RegisterView.as_view(), name="register"),
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("sales/", views.SaleListCreateView.as_view(), name="sale-list"),
    path("sales/<int:pk>/", views.SaleDetailView.as_view(), name="sale-detail"),
    path("sales/<int:pk>/reset/", views.SaleResetView.as_view(), name="sale-reset"),
    path(
        "sales/<int:pk>/purchase-token/", views.PurchaseTokenView.as_view(), name="purchase-token"
    ),
    path("orders/", views.OrderListView.as_view(), name="order-list"),
    path("orders/<str:order_id>/", views.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<str:order_id>/pay/", views.PayOrderView.as_view(), name="order-pay"),
    path("orders/<str:order_id>/cancel/", views.CancelOrderView.as_view(), name="order-cancel"),
    path("lab/runs/", lab_views.RunListView.as_view(), name="lab-runs"),
    path("lab/runs/<int:pk>/", lab_views.RunDetailView.as_view(), name="lab-run"),
    path("lab/runs/<int:pk>/stop/", lab_views.RunStopView.as_view(), name="lab-run-stop"),
]
