"""Forms of the browser pages. They parse input; the engine validates what it means."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm


class BuyForm(forms.Form):
    """The buy button's form. The key is rendered by the server when the sale page is drawn, so
    every submit of that page (a double click, a refresh-resubmit) carries the same key."""

    quantity = forms.IntegerField(label="Quantity", initial=1)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)
    # Sales with require_purchase_token: the page's script asks the API for a single-use token
    # as the buyer presses Buy, and sends it along.
    purchase_token = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False)


class SignupForm(UserCreationForm):
    """Django's sign-up form (username uniqueness and the password validators), with autofill
    hints so phones offer to save the new password."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(autocomplete="username", autofocus=True)
        for name in ("password1", "password2"):
            self.fields[name].widget.attrs["autocomplete"] = "new-password"
