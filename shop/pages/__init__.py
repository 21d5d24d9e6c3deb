"""What the browser pages show, computed in one place so views stay thin and templates dumb.

Nothing here decides a sale: placement, payment and restocking live in ``seckill``. The package
turns their results into page copy, one module per page family: ``error_copy`` (the friendly
text for each error code), ``strategy_notes`` (one sentence per strategy), ``sales`` (a sale's
live status and stock), ``purchase_panel`` (the teaching panel's facts about a purchase),
``orders`` (a buyer's orders) and ``dashboard`` (the staff dashboard's rows). Views use the names
re-exported here.
"""

from shop.pages.dashboard import (
    AuditResult,
    SaleAudit,
    SaleHealth,
    dashboard,
    orders_by_status,
    run_audit,
)
from shop.pages.error_copy import (
    ERROR_COPY,
    FALLBACK_COPY,
    Copy,
    PageError,
    describe_error,
    status_copy,
)
from shop.pages.orders import order_actions, orders_of
from shop.pages.purchase_panel import (
    SESSION_PLACEMENTS,
    PurchaseFacts,
    facts_for_order,
    facts_for_sale,
    purchase_facts,
    recalled_placement,
    remember_placement,
)
from shop.pages.sales import (
    Allowance,
    SaleCard,
    buyer_allowance,
    listed_sales,
    new_idempotency_key,
    sale_cards,
    server_now_ms,
)
from shop.pages.strategy_notes import STRATEGY_NOTES, StrategyInfo, strategy_info

__all__ = [
    "ERROR_COPY",
    "Allowance",
    "buyer_allowance",
    "FALLBACK_COPY",
    "SESSION_PLACEMENTS",
    "STRATEGY_NOTES",
    "AuditResult",
    "Copy",
    "PageError",
    "PurchaseFacts",
    "SaleAudit",
    "SaleCard",
    "SaleHealth",
    "StrategyInfo",
    "dashboard",
    "describe_error",
    "facts_for_order",
    "facts_for_sale",
    "listed_sales",
    "new_idempotency_key",
    "order_actions",
    "orders_by_status",
    "orders_of",
    "purchase_facts",
    "recalled_placement",
    "remember_placement",
    "run_audit",
    "sale_cards",
    "server_now_ms",
    "status_copy",
    "strategy_info",
]
