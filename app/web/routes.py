"""Every URL of the web app, in one table."""

from functools import partial

from starlette.routing import Route

from app.web.api import chat as api_chat
from app.web.api import comments as api_comments
from app.web.api import domains as api_domains
from app.web.api import entries as api_entries
from app.web.api import events as api_events
from app.web.api import inbound as api_inbound
from app.web.api import messages as api_messages
from app.web.api import openapi as api_openapi
from app.web.api import passthrough as api_passthrough
from app.web.api import reports as api_reports
from app.web.api import send as api_send
from app.web.api import suppressions as api_suppressions
from app.web.api import teams as api_teams
from app.web.api import webhooks as api_webhooks
from app.web.hooks import events, inbound, tracking
from app.web.pages import dev, domains, health, mail, participation, settings, signin, team, webhooks

T = "/teams/{tid:int}"

# Starlette tries the routes in this order, each a regular expression on the path: the ones that
# providers, mail clients and applications call most (intake, events, tracking, sending) come
# first, so that a webhook is not matched against the hundred page and API routes before its own.
# No two routes match the same path and method (tests/app/web/test_routes.py), so the order
# changes nothing else.
routes = [
    Route("/inbound/{provider:str}", inbound.webhook, methods=["POST"]),  # raw, sendgrid, mailgun, ...
    # Mailgun posts raw MIME (body-mime) to route URLs ending in mime: the same intake
    Route("/inbound/mailgun/mime", partial(inbound.intake, name="mailgun"), methods=["POST"]),
    Route("/events/{provider:str}", events.webhook, methods=["POST"]),  # sendgrid, ses
    Route("/t/o/{token:str}", tracking.open_pixel),
    Route("/t/c/{token:str}", tracking.click),
    Route("/t/u/{token:str}", tracking.unsubscribe, methods=["GET", "POST"]),
    Route("/api/messages", api_send.create, methods=["POST"]),
    Route("/api/messages/batch", api_send.create_batch, methods=["POST"]),
    Route("/", team.home),
    Route("/healthz", health.healthz),
    Route("/metrics", health.metrics),
    Route("/signin", signin.signin_form),
    Route("/signin", signin.signin_request, methods=["POST"]),
    Route("/signin/{token:str}", signin.signin_link),
    Route("/signin/{token:str}", signin.signin_consume, methods=["POST"]),
    Route("/signout", signin.signout, methods=["POST"]),
    Route(T, team.day),
    Route(T + "/search", team.search),
    Route(T + "/members/{mid:int}", team.member_history),
    Route(T + "/participation", participation.participation_page),
    Route(T + "/export", participation.export_download),
    Route(T + "/entries", team.entry_add, methods=["POST"]),
    Route(T + "/entries/{eid:int}/edit", team.entry_edit, methods=["GET", "POST"]),
    Route(T + "/entries/{eid:int}/delete", team.entry_delete, methods=["POST"]),
    Route(T + "/goals/{eid:int}/close", team.goal_close, methods=["POST"]),
    Route(T + "/entries/{eid:int}/resolve", team.blocker_resolve, methods=["POST"]),
    Route("/teams", settings.team_create, methods=["POST"]),
    Route(T + "/settings", settings.team_form, methods=["GET", "POST"]),
    Route(T + "/settings/members", settings.members),
    Route(T + "/settings/members", settings.invite, methods=["POST"]),
    Route(T + "/settings/members/{mid:int}/role", settings.member_role, methods=["POST"]),
    Route(T + "/settings/members/{mid:int}/remove", settings.member_remove, methods=["POST"]),
    Route(T + "/settings/me", settings.my_schedule, methods=["GET", "POST"]),
    Route(T + "/settings/me/mail", settings.my_subscription, methods=["POST"]),
    Route(T + "/settings/me/pauses/{pause_id:int}/remove", settings.unpause, methods=["POST"]),
    Route(T + "/settings/tokens", settings.tokens, methods=["GET", "POST"]),
    Route(T + "/settings/tokens/{token_id:int}/revoke", settings.token_revoke, methods=["POST"]),
    Route(T + "/settings/webhooks", webhooks.endpoints, methods=["GET", "POST"]),
    Route(T + "/settings/webhooks/{webhook_id:int}/remove", webhooks.endpoint_remove, methods=["POST"]),
    Route(
        T + "/settings/webhooks/deliveries/{delivery_id:int}/replay",
        webhooks.delivery_replay,
        methods=["POST"],
    ),
    Route(T + "/settings/chat", settings.chat_destinations, methods=["GET", "POST"]),
    Route(T + "/settings/chat/{dest_id:int}/remove", settings.chat_remove, methods=["POST"]),
    Route(T + "/settings/chat/{dest_id:int}/test", settings.chat_test, methods=["POST"]),
    Route("/mail/outbound", mail.outbound_list),
    Route("/mail/outbound/{mid:int}", mail.outbound_one),
    Route("/mail/outbound/{mid:int}/html", mail.outbound_html),
    Route("/mail/outbound/{mid:int}/redrive", mail.outbound_redrive, methods=["POST"]),
    Route("/mail/outbound/redrive", mail.outbound_redrive_all, methods=["POST"]),
    Route("/mail/inbound", mail.inbound_list),
    Route("/mail/inbound/{iid:int}", mail.inbound_one),
    Route("/mail/inbound/{iid:int}/html", mail.inbound_html),
    Route("/mail/inbound/{iid:int}/reprocess", mail.inbound_reprocess, methods=["POST"]),
    Route("/mail/inbound/{iid:int}/cut", mail.inbound_cut, methods=["POST"]),
    Route("/mail/suppressions", mail.suppressions),
    Route("/mail/senders", mail.senders),
    Route("/mail/health", health.operator_health),
    Route("/mail/domains", domains.domain_list),
    Route("/mail/domains", domains.domain_add, methods=["POST"]),
    Route("/mail/domains/{did:int}/verify", domains.domain_verify, methods=["POST"]),
    Route("/mail/domains/{did:int}/remove", domains.domain_remove, methods=["POST"]),
    Route("/mail/senders/pass-through", mail.pass_through, methods=["POST"]),
    Route("/mail/suppressions", mail.suppression_add, methods=["POST"]),
    Route("/mail/suppressions/{sid:int}/remove", mail.suppression_remove, methods=["POST"]),
    Route("/api/openapi.json", api_openapi.openapi),
    Route("/api/teams", api_teams.teams),
    Route("/api/teams/{team_id:int}", api_teams.team),
    Route("/api/teams/{team_id:int}/members", api_teams.members),
    Route("/api/teams/{team_id:int}/settings", api_teams.settings_get),
    Route("/api/teams/{team_id:int}/settings", api_teams.settings_patch, methods=["PATCH"]),
    Route("/api/teams/{team_id:int}/chat", api_chat.channels),
    Route("/api/teams/{team_id:int}/chat", api_chat.channel_add, methods=["POST"]),
    Route("/api/teams/{team_id:int}/chat/{channel_id:int}", api_chat.channel_remove, methods=["DELETE"]),
    Route("/api/teams/{team_id:int}/chat/{channel_id:int}/test", api_chat.channel_test, methods=["POST"]),
    Route("/api/teams/{team_id:int}/entries", api_entries.entry_list),
    Route("/api/teams/{team_id:int}/entries", api_entries.entry_create, methods=["POST"]),
    Route("/api/teams/{team_id:int}/participation", api_reports.participation_get),
    Route("/api/teams/{team_id:int}/export", api_reports.export_get),
    Route("/api/teams/{team_id:int}/comments", api_comments.comment_list),
    Route("/api/entries/{entry_id:int}", api_entries.entry_get),
    Route("/api/entries/{entry_id:int}", api_entries.entry_patch, methods=["PATCH"]),
    Route("/api/entries/{entry_id:int}", api_entries.entry_delete, methods=["DELETE"]),
    Route("/api/events", api_events.events),
    Route("/api/inbound", api_inbound.list_inbound),
    Route("/api/inbound/{id:str}", api_inbound.get_inbound),
    Route("/api/inbound/{id:str}/attachments/{index:str}", api_inbound.get_attachment),
    Route("/api/messages", api_messages.list_messages, methods=["GET"]),
    Route("/api/messages/redrive", api_messages.redrive_many, methods=["POST"]),
    Route("/api/messages/{id:int}", api_messages.cancel, methods=["DELETE"]),
    Route("/api/messages/{id:int}/redrive", api_messages.redrive_one, methods=["POST"]),
    Route("/api/messages/{id:str}", api_messages.get_message, methods=["GET"]),
    Route("/api/batches/{batch_id:str}", api_messages.cancel_batch, methods=["DELETE"]),
    Route("/api/domains", api_domains.list_domains),
    Route("/api/domains", api_domains.add_domain, methods=["POST"]),
    Route("/api/domains/{domain:str}/verify", api_domains.verify_domain, methods=["POST"]),
    Route("/api/domains/{domain:str}", api_domains.remove_domain, methods=["DELETE"]),
    Route("/api/relay/pass-through", api_passthrough.get_pass_through),
    Route("/api/relay/pass-through", api_passthrough.put_pass_through, methods=["PUT"]),
    Route("/api/suppressions", api_suppressions.list_suppressions),
    Route("/api/suppressions", api_suppressions.add_suppression, methods=["POST"]),
    Route("/api/suppressions/import", api_suppressions.import_suppressions, methods=["POST"]),
    Route("/api/suppressions/export", api_suppressions.export_suppressions),
    Route("/api/suppressions/{address:str}", api_suppressions.remove_suppression, methods=["DELETE"]),
    Route("/api/webhooks", api_webhooks.list_webhooks),
    Route("/api/webhooks", api_webhooks.add_webhook, methods=["POST"]),
    Route("/api/webhooks/{endpoint_id:int}", api_webhooks.remove_webhook, methods=["DELETE"]),
    Route("/dev/inbox", dev.inbox),
    Route(
        "/dev/inbound/{provider:str}/parse-only", inbound.parse_only, methods=["POST"]
    ),  # benchmark ceiling
    Route("/dev/inbox/{key:str}", dev.message),
    Route("/dev/inbox/{key:str}/reply", dev.reply, methods=["POST"]),
    Route("/dev/remind", dev.send_now, methods=["POST"]),
    Route("/dev/digest", dev.send_now, methods=["POST"]),
]
