# seckill image: the Django app, its Celery worker/beat (same image, other command) and, as the
# `loadtest` target, Locust. Built by docker-compose.yml; runs as a non-root user.
#
#   docker build -t seckill .                      # the app (default target)
#   docker build --target loadtest -t seckill-lt . # the app + Locust
FROM python:3.12-slim AS app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin seckill

# dependencies first: this layer is rebuilt only when requirements.txt changes
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# static files are part of the image (whitenoise serves them); the key is only for this step
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0 \
    && mkdir -p var/log \
    && chown -R seckill:seckill var

USER seckill
EXPOSE 8000
CMD ["gunicorn", "shop.wsgi:application", "--bind", "0.0.0.0:8000", \
     "--workers", "2", "--threads", "4", "--access-logfile", "-"]

# Locust, at the version pinned in requirements-dev.txt, on top of the app (the scenarios import
# project code).
FROM app AS loadtest
USER root
COPY requirements-dev.txt ./
RUN pip install "$(grep -E '^locust==' requirements-dev.txt)"
USER seckill
EXPOSE 8089
CMD ["locust", "-f", "loadtest/locustfile.py"]
