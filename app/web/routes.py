"""Every URL of the web app, in one table."""

from starlette.routing import Route

from app.web import dev, inbound, pages, signin, team

T = "/teams/{tid:int}"

routes = [
    Route("/", team.home),
    Route("/healthz", pages.healthz),
    Route("/signin", signin.signin_form),
    Route("/signin", signin.signin_request, methods=["POST"]),
    Route("/signin/{token:str}", signin.signin_link),
    Route("/signin/{token:str}", signin.signin_consume, methods=["POST"]),
    Route("/signout", signin.signout, methods=["POST"]),
    Route(T, team.day),
    Route(T + "/search", team.search),
    Route(T + "/members/{mid:int}", team.member_history),
    Route(T + "/entries", team.entry_add, methods=["POST"]),
    Route(T + "/entries/{eid:int}/edit", team.entry_edit, methods=["GET", "POST"]),
    Route(T + "/entries/{eid:int}/delete", team.entry_delete, methods=["POST"]),
    Route("/inbound/raw", inbound.raw, methods=["POST"]),
    Route("/dev/inbox", dev.inbox),
    Route("/dev/inbox/{key:str}", dev.message),
]
