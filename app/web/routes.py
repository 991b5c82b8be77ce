"""Every URL of the web app, in one table."""

from starlette.routing import Route

from app.web import api_messages, dev, inbound, pages, tracking

routes = [
    Route("/", pages.home),
    Route("/healthz", pages.healthz),
    Route("/inbound/raw", inbound.raw, methods=["POST"]),
    Route("/dev/inbox", dev.inbox),
    Route("/dev/inbox/{key:str}", dev.message),
    Route("/api/messages", api_messages.list_messages, methods=["GET"]),
    Route("/api/messages/{message_id:str}", api_messages.get_message, methods=["GET"]),
    Route("/t/o/{token:str}", tracking.open_pixel),
    Route("/t/c/{token:str}", tracking.click),
    Route("/t/u/{token:str}", tracking.unsubscribe, methods=["GET", "POST"]),
]
