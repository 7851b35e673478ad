"""The JSON API: one blueprint per resource."""

from sanic import Blueprint

from mininq.api import destinations, jobs, openapi, queues, schedules, system

api = Blueprint.group(jobs.bp, queues.bp, schedules.bp, system.bp, destinations.bp, openapi.bp)
