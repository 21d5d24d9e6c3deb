"""Read models: what the API and the browser pages show, computed once for both.

Plain functions with keyword arguments (the HackSoft style guide's selectors): ``sales`` (a sale
or 404, the sales list, each sale's live figures), ``orders`` (an order or 404, a buyer's
orders) and ``holdings`` (what a buyer holds in a sale and may still buy). Writes live in the
services (``seckill.placement``, ``seckill.lifecycle``).
"""
