"""Every URL of the web app, in one table."""

from starlette.routing import Route

from app.web import api, api_inbound, api_send, dev, inbound, mail_pages, pages, settings_pages, signin, team

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
    Route("/teams", settings_pages.team_create, methods=["POST"]),
    Route(T + "/settings", settings_pages.team_form, methods=["GET", "POST"]),
    Route(T + "/settings/members", settings_pages.members),
    Route(T + "/settings/members", settings_pages.invite, methods=["POST"]),
    Route(T + "/settings/members/{mid:int}/role", settings_pages.member_role, methods=["POST"]),
    Route(T + "/settings/members/{mid:int}/remove", settings_pages.member_remove, methods=["POST"]),
    Route(T + "/settings/me", settings_pages.my_schedule, methods=["GET", "POST"]),
    Route(T + "/settings/me/mail", settings_pages.my_subscription, methods=["POST"]),
    Route(T + "/settings/tokens", settings_pages.tokens, methods=["GET", "POST"]),
    Route(T + "/settings/tokens/{token_id:int}/revoke", settings_pages.token_revoke, methods=["POST"]),
    Route("/mail/outbound", mail_pages.outbound_list),
    Route("/mail/outbound/{mid:int}", mail_pages.outbound_one),
    Route("/mail/outbound/{mid:int}/html", mail_pages.outbound_html),
    Route("/mail/inbound", mail_pages.inbound_list),
    Route("/mail/inbound/{iid:int}", mail_pages.inbound_one),
    Route("/mail/inbound/{iid:int}/html", mail_pages.inbound_html),
    Route("/mail/inbound/{iid:int}/reprocess", mail_pages.inbound_reprocess, methods=["POST"]),
    Route("/mail/suppressions", mail_pages.suppressions),
    Route("/mail/suppressions", mail_pages.suppression_add, methods=["POST"]),
    Route("/mail/suppressions/{sid:int}/remove", mail_pages.suppression_remove, methods=["POST"]),
    Route("/api/openapi.json", api.openapi),
    Route("/api/teams", api.teams),
    Route("/api/teams/{team_id:int}", api.team),
    Route("/api/teams/{team_id:int}/members", api.members),
    Route("/api/teams/{team_id:int}/entries", api.entry_list),
    Route("/api/teams/{team_id:int}/entries", api.entry_create, methods=["POST"]),
    Route("/api/entries/{entry_id:int}", api.entry_get),
    Route("/api/entries/{entry_id:int}", api.entry_patch, methods=["PATCH"]),
    Route("/api/entries/{entry_id:int}", api.entry_delete, methods=["DELETE"]),
    Route("/api/events", api.events),
    Route("/inbound/raw", inbound.raw, methods=["POST"]),
    Route("/inbound/mailgun/mime", inbound.mailgun_mime, methods=["POST"]),  # Mailgun posts raw MIME here
    Route("/inbound/{provider:str}", inbound.webhook, methods=["POST"]),
    Route("/api/inbound", api_inbound.list_inbound),
    Route("/api/inbound/{id:str}", api_inbound.get_inbound),
    Route("/api/messages", api_send.create, methods=["POST"]),
    Route("/api/messages/{id:int}", api_send.cancel, methods=["DELETE"]),
    Route("/api/batches/{batch_id:str}", api_send.cancel_batch, methods=["DELETE"]),
    Route("/dev/inbox", dev.inbox),
    Route(
        "/dev/inbound/{provider:str}/parse-only", inbound.parse_only, methods=["POST"]
    ),  # benchmark ceiling
    Route("/dev/inbox/{key:str}", dev.message),
    Route("/dev/inbox/{key:str}/reply", dev.reply, methods=["POST"]),
    Route("/dev/remind", dev.send_now, methods=["POST"]),
    Route("/dev/digest", dev.send_now, methods=["POST"]),
]
