"""bench.variants (two settings of one method, B ÷ A on held-out quality): the direction of every
ratio, the Bonferroni level, and its refusal of flags compress would refuse."""

from __future__ import annotations

import sys

import pytest

from bench import peer_quality as quality
from bench import variants
from cola_core.evaluation.retention import retention
from cola_core.evaluation.suite import accuracy_score


def test_eight_bits_against_two_every_ratio_points_the_right_way():
    """B (2-bit RTN) is far worse than A (8-bit): perplexity and KL ratios above 1, accuracies not above."""
    rows = variants.run("rtn", ["--bits", "8"], ["--bits", "2"], ("tiny",), n=8, heldout=24, limit=20)
    assert [r["measure"] for r in rows] == [
        "held-out prose ppl",
        "KL to dense",
        "code (perplexity)",
        "math (accuracy)",
        "facts (accuracy)",
    ]
    assert {r["level"] for r in rows} == {1 - 0.05 / 5}  # two held-out ratios and three capabilities
    by = {r["measure"]: r for r in rows}
    for measure in ("held-out prose ppl", "KL to dense", "code (perplexity)"):
        value, lo, hi = by[measure]["ratio"]
        assert 1 < lo <= value <= hi, (measure, by[measure])
        a, b = by[measure]["values"]
        assert value == pytest.approx(b / a, rel=1e-6)
    for measure in ("math (accuracy)", "facts (accuracy)"):
        a, b = by[measure]["values"]
        assert b <= a
    error_a, error_b = rows[0]["error"]
    assert error_b > 10 * error_a
    table = variants.to_markdown(rows)
    assert "| rtn | `--bits 8` | `--bits 2` | cola-tiny | KL to dense |" in table


def test_a_higher_level_widens_both_intervals():
    scores = [
        accuracy_score("x", [i % 2 for i in range(60)], [1] * 60),
        accuracy_score("x", [i % 3 > 0 for i in range(60)], [1] * 60),
    ]
    _, lo95, hi95 = retention(*scores, rounds=2000)
    _, lo99, hi99 = retention(*scores, rounds=2000, level=0.99)
    assert lo99 < lo95 < hi95 < hi99
    a, b = [1.0 + (i % 5) for i in range(40)], [1.2 + (i % 7) for i in range(40)]
    _, lo95, hi95 = quality.paired_ratio(a, b)
    _, lo99, hi99 = quality.paired_ratio(a, b, level=0.99)
    assert lo99 < lo95 < hi95 < hi99


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "awq", "--b=--awq-dou"], "--b '--awq-dou' with --method awq: unrecognized arguments: --awq-dou"),
        (["--method", "gptq", "--b=--bits 9"], "bits must lie in 2..8, got 9"),
        (["--method", "awq", "--a=--awq-duo", "--b=--awq-duo"], "the same flags: nothing to compare"),
        (
            ["--method", "awq", "--b=--awq-duo", "--models", "tiny,huge"],
            "--models: choose from tiny, wide, moe, got 'huge'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_model_is_built(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench.variants", *argv])
    monkeypatch.setattr(variants, "run", lambda *a, **k: pytest.fail("ran despite bad input"))
    with pytest.raises(SystemExit) as exit_:
        variants.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
