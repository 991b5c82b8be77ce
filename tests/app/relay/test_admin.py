from app.cli import main
from app.relay.admin import masked
from app.relay.routing import load_config


def test_senders_routes_and_team_settings_from_the_command_line(team, capsys):
    assert (
        main(
            ["sender", "add", "relay", "smtp://u:secret@relay.example.com:587?tls=starttls", "--weight", "3"]
        )
        == 0
    )
    assert main(["sender", "add", "sg", "sendgrid://SG.key@api.sendgrid.com", "--rate", "50"]) == 0
    assert main(["sender", "add", "bad", "ftp://x"]) == 1
    assert main(["route", "add", "*.gov", "sg"]) == 0
    assert main(["route", "add", "hotmail.com", "nope"]) == 1
    assert main(["team-relay", str(team.id), "--senders", "sg,relay", "--strategy", "failover"]) == 0
    assert main(["sender", "list"]) == 0
    out, err = capsys.readouterr()
    assert "secret" not in out and "SG.key" not in out and "***" in out
    assert "unknown transport" in err and "unknown senders: nope" in err
    cfg = load_config()
    assert cfg.senders["relay"].weight == 3 and cfg.senders["sg"].rate_per_s == 50
    assert cfg.routes == ((None, "*.gov", ("sg",)),)
    plan = cfg.team(team.id)
    assert plan.senders == ("sg", "relay") and plan.strategy == "failover"


def test_masked_hides_passwords_and_keys():
    assert masked("smtp://user:p@ss@host:25") == "smtp://user:***@host:25"
    assert masked("sendgrid://SG.abc@api.sendgrid.com") == "sendgrid://***@api.sendgrid.com"
    assert masked("maildir:") == "maildir:"
