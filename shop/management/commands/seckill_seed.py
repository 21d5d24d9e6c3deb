from django.core.management.base import BaseCommand

from shop.demo import DEMO_BUYER, DEMO_STAFF, seed_demo_data


class Command(BaseCommand):
    help = "Load demo products, a live and an upcoming sale, a buyer and a staff user (idempotent)."

    def handle(self, *args, **options) -> None:
        result = seed_demo_data()
        for line in result.created:
            self.stdout.write(f"created {line}")
        for line in result.updated:
            self.stdout.write(f"updated {line}")
        if not (result.created or result.updated):
            self.stdout.write("demo data already present")
        self.stdout.write(
            f"log in as '{DEMO_BUYER}' (buyer) or '{DEMO_STAFF}' (staff); "
            "password from SECKILL_DEMO_PASSWORD, default 'flash-sale-demo'"
        )
