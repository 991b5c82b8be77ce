"""Every URL of the web app, in one table."""

from starlette.routing import Route

from app.web import api_send, dev, inbound, pages

routes = [
    Route("/", pages.home),
    Route("/healthz", pages.healthz),
    Route("/inbound/raw", inbound.raw, methods=["POST"]),
    Route("/api/messages", api_send.create, methods=["POST"]),
    Route("/api/messages/{id:int}", api_send.cancel, methods=["DELETE"]),
    Route("/api/batches/{batch_id:str}", api_send.cancel_batch, methods=["DELETE"]),
    Route("/dev/inbox", dev.inbox),
    Route("/dev/inbox/{key:str}", dev.message),
]
