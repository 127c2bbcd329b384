"""The command tree. Each ``mailer.cli.<capability>`` module adds its commands to these apps,
so one capability's commands live beside each other and no module edits another's."""

import typer


def _app(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, pretty_exceptions_enable=False)


app = typer.Typer(
    help="Press releases in, segmented newsletters out, every delivery accounted for.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
releases_app = _app("Import and inspect press releases.")
topics_app = _app("Issue areas constituents follow.")
feeds_app = _app("RSS/Atom feeds watched for new releases.")
subscribers_app = _app("Constituents on the list and their consent.")
segments_app = _app("Saved audience queries.")
campaigns_app = _app("Create, approve, schedule, send and report campaigns.")
digests_app = _app("Recurring daily or weekly digests.")
templates_app = _app("The email templates the office edits.")
events_app = _app("Provider delivery events.")
schedule_app = _app("What goes out when.")
deliveries_app = _app("Per-recipient delivery records.")
users_app = _app("Dashboard users.")
tokens_app = _app("API bearer tokens.")

for name, sub in [
    ("releases", releases_app), ("topics", topics_app), ("feeds", feeds_app),
    ("subscribers", subscribers_app), ("segments", segments_app),
    ("campaigns", campaigns_app), ("digests", digests_app), ("templates", templates_app),
    ("events", events_app), ("schedule", schedule_app), ("deliveries", deliveries_app),
    ("users", users_app), ("tokens", tokens_app),
]:
    app.add_typer(sub, name=name)
