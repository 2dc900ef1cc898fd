"""The notebook 09 exercise check: right answers pass, wrong ones are explained, nothing raises."""

from __future__ import annotations

import pytest

from gotalk_lab.exercises import GO_REFERENCE, check_go_reference_verdicts

RIGHT = {case_id: verdict for case_id, (verdict, _) in GO_REFERENCE.items()}


def test_the_right_answer_passes():
    assert check_go_reference_verdicts(RIGHT)
    assert check_go_reference_verdicts({k: v.upper() for k, v in RIGHT.items()})


def test_a_wrong_verdict_is_explained():
    verdict = check_go_reference_verdicts({**RIGHT, "4.3": "fail"})
    assert not verdict and "4.3" in verdict.message and "non-strict" in verdict.message and "f00000002" in verdict.message
    assert "1.2" not in verdict.message


class Weird:
    def __eq__(self, other):
        raise RuntimeError("no")

    __hash__ = object.__hash__


@pytest.mark.parametrize("answer", [None, ..., 3, "pass", [], {}, {"1.2": "pass"}, {k: 1 for k in RIGHT},
                                    {k: Weird() for k in RIGHT}, {Weird(): 1}, b"\xff", float("nan")])
def test_never_raises(answer):
    verdict = check_go_reference_verdicts(answer)
    assert not verdict and verdict.message
    assert verdict._repr_html_() and repr(verdict)
