from pathlib import Path

from click.testing import CliRunner

from gateway.cli import cli

SHIPPED = Path(__file__).resolve().parents[3] / "moderation/data/labelled_eval.csv"


def test_eval_prints_metrics_for_the_shipped_set() -> None:
    result = CliRunner().invoke(cli, ["moderation", "eval", str(SHIPPED), "--offline-moderation"])
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and "recall" in result.output and "F1" in result.output
    assert "predicted flagged" in result.output


def test_eval_names_the_problem_with_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,lab\nhello,1\n")
    result = CliRunner().invoke(cli, ["moderation", "eval", str(bad), "--offline-moderation"])
    assert result.exit_code == 1
    assert "missing column(s) label" in result.output and "Traceback" not in result.output
    unknown = CliRunner().invoke(
        cli, ["moderation", "eval", str(SHIPPED), "--offline-moderation", "--policy", "x"]
    )
    assert unknown.exit_code == 1 and "unknown policy 'x'" in unknown.output
