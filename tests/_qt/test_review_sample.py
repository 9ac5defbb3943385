"""The Review dock's sampled QC box on a real napari viewer (run under xvfb)."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_sam2_track.review import read_review  # noqa: E402
from test_review_dock import dock  # noqa: E402,F401 - the dock on a synthetic project
from test_prompt_widget import own_settings  # noqa: E402,F401 - settings under tmp_path


def test_draw_judge_and_verdict_in_the_dock(dock, qtbot):  # noqa: F811
    box = dock.sample_box
    dock.select_object(2)
    dock.go_to_frame(12)
    assert dock.chosen_masklet() == (2, 10, 19)
    qtbot.waitUntil(lambda: box.masklet == (2, 10, 19) and "no sample" in box.verdict_label.text(), timeout=30000)
    assert not box.pass_button.isEnabled()
    dock.reviewer_edit.setText("vera")
    box.draw_button.click()
    qtbot.waitUntil(lambda: box.frames.count() > 0, timeout=30000)
    (sample,) = read_review(dock.session.store).samples
    assert (sample.object, sample.start, sample.end, sample.reviewer) == (2, 10, 19, "vera")
    assert [box.frames.item(i).text() for i in range(box.frames.count())] == [f"· {f}" for f in sample.frames]
    assert "pending" in box.verdict_label.text()
    # a click on a frame of the sample shows it
    last = box.frames.item(box.frames.count() - 1)
    box.frames.itemClicked.emit(last)
    assert dock.current_frame == sample.frames[-1]
    for i in range(box.frames.count()):
        box.frames.setCurrentRow(i)
        with qtbot.waitSignal(box.judged, timeout=30000):
            (box.fail_button if i == 0 else box.pass_button).click()
    assert box.frames.item(0).text().startswith("✗")
    rule_ok = (len(sample.frames) - 1) / len(sample.frames) >= sample.rule
    expected = "satisfactory" if rule_ok else "unsatisfactory"
    # the verdict is read back on a worker after the last judgement: wait for it
    qtbot.waitUntil(lambda: box.verdict_label.text().startswith(expected), timeout=30000)
    state = read_review(dock.session.store)
    judged = [d for d in state.decisions if d.basis == "frame"]
    assert sorted(d.start for d in judged) == sample.frames and {d.reviewer for d in judged} == {"vera"}
    (verdict,) = [d for d in state.decisions if d.basis == "sample"]
    assert (verdict.start, verdict.end, verdict.status) == (10, 19, "unsatisfactory")  # the rule: all pass
