"""Every process entry point resolves every foreign key among the models it loads: a send
helper process (``python -m mailer.delivery.helper``) imported campaigns without the
``digests`` table their ``digest_id`` references, and its final commit raised
NoReferencedTableError at the end of a 1,000,000-recipient send."""

from __future__ import annotations

import subprocess
import sys

import pytest

RESOLVE = """
import importlib, sys
importlib.import_module(sys.argv[1])
from mailer.storage.base import Base
unresolved = []
for table in Base.metadata.tables.values():
    for fk in table.foreign_keys:
        try:
            fk.column
        except Exception as exc:
            unresolved.append(f"{table.name}: {exc}")
print("\\n".join(unresolved))
"""


@pytest.mark.parametrize("entry", ["mailer.delivery.helper", "mailer.delivery.worker",
                                   "mailer.web.app", "mailer.cli"])
def test_a_process_loading_the_models_resolves_every_reference(entry):
    done = subprocess.run([sys.executable, "-c", RESOLVE, entry], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
