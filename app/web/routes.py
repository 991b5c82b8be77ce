"""Every URL of the web app, in one table."""

from starlette.routing import Route

from app.web import api_inbound, dev, inbound, pages

routes = [
    Route("/", pages.home),
    Route("/healthz", pages.healthz),
    Route("/inbound/raw", inbound.raw, methods=["POST"]),
    Route("/inbound/mailgun/mime", inbound.mailgun_mime, methods=["POST"]),  # Mailgun posts raw MIME here
    Route("/inbound/{provider:str}", inbound.webhook, methods=["POST"]),
    Route("/api/inbound", api_inbound.list_inbound),
    Route("/api/inbound/{id:str}", api_inbound.get_inbound),
    Route("/dev/inbox", dev.inbox),
    Route(
        "/dev/inbound/{provider:str}/parse-only", inbound.parse_only, methods=["POST"]
    ),  # benchmark ceiling
    Route("/dev/inbox/{key:str}", dev.message),
]
