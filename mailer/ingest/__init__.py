"""Press releases and topics in: files, web pages, feeds; deduplicated and tagged.

How a release comes in (``mailer releases import``, ``feeds poll``, the web admin)::

    sources.read_source   path, URL or "-" (load_upload: an uploaded file): size limit,
                          binary refusal, kind sniffing, decoding (UTF-8 ± BOM, UTF-16,
                          Windows-1252)
        │
        ├─ text.parse_text        the office's text layouts        ┐
        ├─ html.parse_html        a release's web page (+ nh3)      ├─ ParsedRelease (parsed.py)
        ├─ markdown.parse_markdown  Markdown with YAML front matter │
        └─ rss.parse_feed         RSS/Atom: one per item            ┘
        │
    service.store_items   dedupe.py: GUID (update) / link / content hash (skip);
                          topics.tag_release: transparent relevance score per topic
        │
    feeds.py              watched feeds: conditional GET, backoff, draft campaigns

The faces (``mailer releases import|tag|untag``, the dashboard's release pages) call
``actions.import_releases`` and ``actions.set_release_tag``.
Interfaces other capabilities use: ``service.import_sources`` / ``import_report``,
``service.release_to_dict``, ``topics.import_topic_pages`` / ``tag_release``,
``feeds.poll_due_feeds`` (the scheduler) and ``feeds.add_feed`` (the web admin).
Every failure a person can cause is a one-line ``mailer.errors.IngestError``.
"""
