"""The lab: a real crowd against any strategy, recorded from inside the critical sections.

``params`` bounds a run, ``engine`` runs one (buyers in threads through the real placement
service, on a sale of its own), ``recorder`` keeps what each attempt did and when, ``analysis``
turns that into the page's figures and ``narrative`` into plain words; ``models.LabRun`` keeps
finished runs. Staff only: the API is ``seckill.api.lab_views``, the page ``shop.views_lab``.
"""
