"""The JSON API: one blueprint per resource."""

from sanic import Blueprint

from mininq.api import destinations, history, jobs, openapi, queues, schedules, system

api = Blueprint.group(jobs.bp, queues.bp, schedules.bp, system.bp, history.bp, destinations.bp,
                      openapi.bp)
