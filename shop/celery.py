"""The Celery app: broker and result backend from settings (Redis by default, RabbitMQ via
``CELERY_BROKER_URL=amqp://…``); tasks discovered in every installed app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
