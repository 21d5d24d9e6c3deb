"""The demo seed loads what the run command promises, and loading it twice changes nothing."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from seckill.models import Sale, SaleStatus
from shop.models import Product

pytestmark = pytest.mark.django_db


def counts():
    return (Product.objects.count(), Sale.objects.count(), get_user_model().objects.count())


def test_seed_creates_demo_data(capsys):
    call_command("seckill_seed")
    statuses = {s.status for s in Sale.objects.all()}
    assert SaleStatus.LIVE in statuses and SaleStatus.UPCOMING in statuses
    users = get_user_model().objects
    assert users.get(username="demo").is_staff is False
    assert users.get(username="staff").is_staff is True
    assert users.get(username="demo").check_password("flash-sale-demo")
    assert "created product" in capsys.readouterr().out


def test_seed_is_idempotent(capsys):
    call_command("seckill_seed")
    first = counts()
    call_command("seckill_seed")
    assert counts() == first
    assert "demo data already present" in capsys.readouterr().out


def test_seed_revives_an_ended_live_sale():
    call_command("seckill_seed")
    sale = Sale.objects.filter(starts_at__lte=timezone.now()).get()
    Sale.objects.filter(pk=sale.pk).update(
        starts_at=timezone.now() - timezone.timedelta(days=9),
        ends_at=timezone.now() - timezone.timedelta(days=2),
    )
    call_command("seckill_seed")
    sale.refresh_from_db()
    assert sale.status == SaleStatus.LIVE
    assert Sale.objects.count() == 2
