"""Per-recipient rendering cost: compile once + personalize, next to a full render per person.

    .venv/bin/python bench/render.py [--recipients 20000] [--baseline-sample 300]

Renders the seed press release (mailer/data) through the real pipeline against an in-memory
SQLite database, then times, for the same recipients:

* compile-once: one ``compile_campaign`` (Jinja2 + css-inline), then per recipient
  ``Personalizer.recipient`` (two signed tokens, escaping) — all the SendGrid transport
  needs — and ``personalize`` (the local substitution outbox and SMTP add);
* baseline: what rendering per recipient would cost — a full Jinja2 render of the HTML and
  text templates with that person's values, plus css-inline of the HTML. The baseline is
  timed on a sample and extrapolated (running it 20,000 times would take minutes).

Figures are CPU time of this process (best of several runs), not wall time.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from mailer.campaigns.content import compile_for  # noqa: E402
from mailer.campaigns.models import Campaign  # noqa: E402
from mailer.ingest.models import Release  # noqa: E402
from mailer.render import Personalizer, personalize  # noqa: E402
from mailer.render.check import sample_contexts  # noqa: E402
from mailer.render.compile import _INLINER, render_text  # noqa: E402
from mailer.render.environment import environment  # noqa: E402
from mailer.render.sample import seed_release  # noqa: E402
from mailer.schema import metadata  # noqa: E402
from mailer.settings import Settings  # noqa: E402
from mailer.tokens import TokenSigner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--baseline-sample", type=int, default=300)
    args = parser.parse_args()

    settings = Settings(public_url="https://news.senator.example.gov",
                        postal_address="123 Hart Senate Office Building, Washington, DC 20510",
                        secret_key="bench-secret")
    signer = TokenSigner("bench-secret")
    people = [(f"constituent{i}@example.com", f"Constituent {i}", i + 1)
              for i in range(args.recipients)]

    session, campaign = _seed_campaign()
    compile_times = []
    for _ in range(5):
        started = time.process_time()
        message = compile_for(session, campaign, settings)
        compile_times.append(time.process_time() - started)
    compile_s = min(compile_times)

    personalizer = Personalizer(settings, signer, campaign.id)
    recipient_us = _timed_loop(lambda p: personalizer.recipient(
        email=p[0], name=p[1], subscriber_id=p[2]), people)
    recipients = [personalizer.recipient(email=e, name=n, subscriber_id=i) for e, n, i in people]
    personalize_us = _timed_loop(lambda r: personalize(message, r), recipients)
    both_us = recipient_us + personalize_us

    sample = people[: args.baseline_sample]
    baseline_us = _baseline(settings, signer, sample, inline=True)
    jinja_only_us = _baseline(settings, signer, sample, inline=False)
    token_us = _timed_loop(lambda p: signer.make(p[2], "unsubscribe"), people)
    slow_signer = signer._signers["unsubscribe"]  # the plain itsdangerous signer it replaces
    slow_token_us = _timed_loop(lambda p: slow_signer.sign(str(p[2])), people)
    _report(args, message, compile_s, [
        ("per recipient: Personalizer.recipient", recipient_us, "2 tokens; all SendGrid needs"),
        ("per recipient: personalize (substitute)", personalize_us, "outbox/SMTP add this"),
        ("compile-once, per recipient (both)", both_us, "the figure that counts"),
        ("baseline: Jinja2 render + css-inline each", baseline_us,
         f"sample of {len(sample)}, extrapolated"),
        ("baseline: Jinja2 render only, each", jinja_only_us,
         f"sample of {len(sample)}, extrapolated"),
        ("  one token, TokenSigner.make (cached key)", token_us, ""),
        ("  one token, itsdangerous sign (derives key)", slow_token_us, "before the change"),
    ], both_us, baseline_us)


def _seed_campaign() -> tuple[Session, Campaign]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    session = Session(engine)
    seed = seed_release()
    release = Release(title=seed.title, subtitle=seed.subtitle, date=seed.date,
                      dateline=seed.dateline, body=seed.body, contact=seed.contact,
                      link=seed.link, source="bench",
                      content_hash=hashlib.sha256(seed.body.encode()).hexdigest())
    session.add(release)
    session.flush()
    campaign = Campaign(kind="release", release_id=release.id, query="all", subject=seed.title,
                        template="press_release")
    session.add(campaign)
    session.flush()
    return session, campaign


def _timed_loop(fn, items) -> float:
    """Mean CPU µs per item, best of 3 runs. CPU time (``time.process_time``) rather than
    wall time, so other processes on a shared machine do not inflate the figure."""
    runs = []
    for _ in range(3):
        gc.collect()
        started = time.process_time()
        for item in items:
            fn(item)
        runs.append((time.process_time() - started) / len(items) * 1e6)
    return min(runs)


def _baseline(settings: Settings, signer: TokenSigner, people, *, inline: bool) -> float:
    """Render per recipient: Jinja2 (HTML + text), with css-inline when ``inline``."""
    env = environment(settings)
    context = sample_contexts("press_release", settings)[0]
    html_template = env.get_template("press_release.html")

    class Person:
        def __init__(self, email, name, sid):
            base = settings.public_url
            self.name, self.email = name, email
            self.unsubscribe_url = f"{base}/unsubscribe/{signer.make(sid, 'unsubscribe')}"
            self.preferences_url = f"{base}/preferences/{signer.make(sid, 'preferences')}"

    def render_one(person):
        recipient = Person(*person)
        html = html_template.render({**context, "recipient": recipient})
        if inline:
            html = _INLINER.inline(html)
        text = render_text("press_release", settings, {**context, "recipient": recipient})
        return html, text

    render_one(people[0])  # warm the template cache
    return _timed_loop(render_one, people)


def _report(args, message, compile_s, rows, both_us, baseline_us) -> None:
    n = args.recipients
    html_kb = len(message.html.encode()) / 1024
    print(f"seed press release: {html_kb:.1f} KB HTML, {len(message.text)} chars text; "
          f"{n:,} recipients; Python {sys.version.split()[0]}; CPU time, best of 3")
    print(f"{'step':46} {'cost':>12} {'for ' + format(n, ','):>12}  note")
    print(f"{'one-time compile (Jinja2 + css-inline)':46} {compile_s * 1e3:9.2f} ms "
          f"{compile_s:11.3f} s  once per campaign")
    for step, micros, note in rows:
        print(f"{step:46} {micros:9.2f} µs {micros * n / 1e6:11.3f} s  {note}")
    print(f"compile-once is {baseline_us / both_us:,.0f}x cheaper per recipient than rendering "
          f"each; target < 10 µs per recipient: {'met' if both_us < 10 else 'NOT met'} "
          f"({both_us:.2f} µs); a million recipients: {both_us:.1f} s of CPU vs "
          f"{baseline_us / 3600:.1f} h")


if __name__ == "__main__":
    main()
