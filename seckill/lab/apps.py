from django.apps import AppConfig


class LabConfig(AppConfig):
    name = "seckill.lab"
    label = "lab"
    verbose_name = "Lab runs"
    default_auto_field = "django.db.models.BigAutoField"
