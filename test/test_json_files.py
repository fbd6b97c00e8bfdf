import os
import stat

from thermal_synth.common.json_files import write_text_atomic


def test_atomic_write_gives_the_permissions_a_plain_open_would(tmp_path):
    target = tmp_path / "bank.json"
    write_text_atomic(target, "{}")
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert stat.S_IMODE(os.stat(target).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
