"""Sign up and log in (Django's own views, with this app's templates and the API's sign-in
rate limits, so a password-guessing bot gains nothing by using the browser forms instead)."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from seckill import rate_limit
from shop.forms import SignupForm


def too_many_attempts(
    request: HttpRequest, form, template: str, wait: float, context: dict | None = None
) -> HttpResponse:
    """429 with Retry-After, the form redrawn with the reason (``context``: the template's
    own, in place of this site's ``next``)."""
    seconds = max(1, math.ceil(wait))
    form.add_error(None, f"Too many attempts from here. Try again in {seconds} s.")
    context = {"next": safe_next(request)} if context is None else context
    response = render(request, template, {**context, "form": form}, status=429)
    response["Retry-After"] = str(seconds)
    return response


def sign_in_wait(request: HttpRequest) -> float:
    """The API's sign-in budgets (per address, per submitted username) for a browser form."""
    return rate_limit.sign_in_wait(
        address=rate_limit.client_address(request), username=request.POST.get("username")
    )


class ThrottledLoginView(LoginView):
    """Django's login, counting each attempt against the per-address and per-username budgets."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        wait = sign_in_wait(request)
        if wait:
            return too_many_attempts(request, self.get_form(), self.template_name, wait)
        return super().post(request, *args, **kwargs)


def admin_login(request: HttpRequest) -> HttpResponse:
    """/admin/login/ with the same budgets: the seeded ``staff`` account's password is
    documented, so the admin form must not be the one way to guess without being slowed."""
    wait = sign_in_wait(request) if request.method == "POST" else 0.0
    if not wait:
        return admin.site.login(request)
    form = AdminAuthenticationForm(request, initial={"username": request.POST.get("username")})
    form.cleaned_data = {}  # unbound: add_error expects a cleaned form
    context = {**admin.site.each_context(request), "app_path": request.path}
    return too_many_attempts(request, form, "admin/login.html", wait, context)


def safe_next(request: HttpRequest) -> str:
    """Where to go after signing up: ``next`` if it points into this site, else home."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(settings.LOGIN_REDIRECT_URL)  # a URL ("/"), never the bare name "home"


@require_http_methods(["GET", "HEAD", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create a buyer and sign them in straight away, back to the page that sent them here."""
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        wait = sign_in_wait(request)
        if wait:  # account farming shares the sign-in budget
            return too_many_attempts(request, form, "registration/signup.html", wait)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(safe_next(request))
    return render(
        request,
        "registration/signup.html",
        {"form": form, "next": safe_next(request)},
        status=400 if form.is_bound else 200,
    )
