"""The seckill Django project and its catalog (products, users, pages)."""

from shop.celery import app as celery_app

__all__ = ("celery_app",)
