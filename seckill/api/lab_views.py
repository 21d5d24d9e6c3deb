"""The lab's staff API: start a crowd against a strategy, watch it, stop it, list kept runs.

Thin: the engine (``seckill.lab.engine``) runs and records; these views parse and render.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from seckill.api.lab_serializers import RunListSerializer, RunParametersSerializer, RunSerializer
from seckill.api.openapi import ERROR
from seckill.errors import NotFound
from seckill.lab import engine
from seckill.lab.models import LabRun, RunStatus
from seckill.lab.params import RunParameters

LISTED = 50


def get_run(pk: int) -> LabRun:
    run = LabRun.objects.filter(pk=pk).first()
    if run is None:
        raise NotFound(f"no lab run {pk}")
    return run


class RunListView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        summary="Kept lab runs, newest first",
        responses={200: RunListSerializer(many=True), 401: ERROR, 403: ERROR},
    )
    def get(self, request: Request) -> Response:
        engine.close_orphans_if_idle()
        runs = LabRun.objects.all()[:LISTED]
        return Response(RunListSerializer(runs, many=True).data)

    @extend_schema(
        summary="Start a lab run",
        description="A crowd of real buyers (through the real placement service, Redis and "
        "database) on a lab sale of its own. One run at a time: 409 `lab_busy` while another "
        "runs. The answer comes at once; poll the run for its figures.",
        request=RunParametersSerializer,
        responses={202: RunSerializer, 400: ERROR, 401: ERROR, 403: ERROR, 409: ERROR},
    )
    def post(self, request: Request) -> Response:
        data = RunParametersSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = engine.start_run(RunParameters(**data.validated_data), started_by=request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        summary="A lab run: live figures while it runs, kept figures and verdict after",
        responses={200: RunSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        engine.close_orphans_if_idle()
        return Response(RunSerializer(get_run(pk)).data)


class RunStopView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        summary="Stop a lab run",
        description="Buyers not yet answered stop pressing Buy; the attempts in flight finish, "
        "then the run is audited and kept as `stopped`. Stopping an ended run changes nothing.",
        request=None,
        responses={202: RunSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def post(self, request: Request, pk: int) -> Response:
        run = get_run(pk)
        if run.status == RunStatus.RUNNING:
            engine.request_stop(run.pk)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
