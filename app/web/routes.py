"""Every URL of the web app, in one table."""

from starlette.routing import Route

from app.web import dev, inbound, pages

routes = [
    Route("/", pages.home),
    Route("/healthz", pages.healthz),
    Route("/inbound/raw", inbound.raw, methods=["POST"]),
    Route("/inbound/{provider:str}", inbound.webhook, methods=["POST"]),
    Route("/dev/inbox", dev.inbox),
    Route("/dev/inbox/{key:str}", dev.message),
]
