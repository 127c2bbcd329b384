import zipfile

import pytest
from sqlalchemy import func, select

from subscribers.models import Subscriber


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_spreadsheet_instead_of_a_csv_is_refused_in_one_line(cli, db, tmp_path):
    workbook = tmp_path / "audience.xlsx"  # what staff save when they forget "Save as CSV"
    with zipfile.ZipFile(workbook, "w") as archive:
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet>" + "\0" * 64 + "</worksheet>")
    result = cli("subscribers", "import", str(workbook), "--json")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"mailer: error: {workbook}: this is a binary file, not a CSV (export it as CSV first)")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
