"""Every URL of the web app, in one table."""

from starlette.routing import Route

from app.web import dev, inbound, pages, tracking

routes = [
    Route("/", pages.home),
    Route("/healthz", pages.healthz),
    Route("/inbound/raw", inbound.raw, methods=["POST"]),
    Route("/dev/inbox", dev.inbox),
    Route("/dev/inbox/{key:str}", dev.message),
    Route("/t/o/{token:str}", tracking.open_pixel),
    Route("/t/c/{token:str}", tracking.click),
    Route("/t/u/{token:str}", tracking.unsubscribe, methods=["GET", "POST"]),
]
