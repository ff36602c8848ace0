"""`traj show` prints recorded text as written: square brackets are data, not rich markup."""

from __future__ import annotations

from expagent.trajectory import TrajectoryWriter


def test_bracketed_text_survives_traj_show(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code = "return P_(*_ORDINAL_SUFFIXES[gender][digit])"
    writer = TrajectoryWriter(tmp_path / "trajectory.json", {
        "run_id": "r[1]", "issue": {"text": "print('[bold]hi[/bold]') shows hi", "source": "argument"},
        "repo": {"path": "/x[y]", "base_commit": "abc", "name": None}, "model": {"name": "scripted:[m]"},
        "sandbox": "local"})
    writer.data["steps"].append({
        "index": 0, "reply": {"content": f"The bug: {code}"},
        "actions": [{"tool": "bash", "arguments": {"command": "grep -n '[gender]' x.py"}, "exit_code": 0,
                     "output": "12:    [red]not red[/red] and [link=x]y[/link]"}]})
    writer.data["patch"] = f"--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-{code}\n+{code}  # [fixed]\n"
    writer.save()

    from expagent.traj_view import show_trajectory

    show_trajectory(tmp_path / "trajectory.json")
    out = capsys.readouterr().out
    for text in (code, "print('[bold]hi[/bold]') shows hi", "grep -n '[gender]' x.py",
                 "[red]not red[/red] and [link=x]y[/link]", "scripted:[m]", "r[1]", "# [fixed]"):
        assert text in out, text
