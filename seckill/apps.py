from django.apps import AppConfig


class SeckillConfig(AppConfig):
    name = "seckill"
    verbose_name = "Flash sales"

    def ready(self) -> None:
        # Token and user changes revoke the API's cached tokens in Redis at once.
        from seckill.token_cache import connect_signals

        connect_signals()
        # Sale edits drop this process's cached sale definition at once.
        from seckill import sale_cache

        sale_cache.connect_signals()
        # Register the Celery tasks in every process (web too): the engine sends its drain
        # task by name (seckill.order_queue.DRAIN_TASK) rather than importing the task layer.
        from seckill import tasks  # noqa: F401
