"""The paired comparison in `digits review`: counts and McNemar p-values on hand-made predictions,
and per-sample predictions read by real DVC from commits, an experiment and the workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from math import comb
from pathlib import Path

import numpy as np
import pytest

from digits import cli
from digits.errors import DigitsError
from digits.review import (
    CONFUSION_TABLE,
    RevisionPredictions,
    compare_predictions,
    paired_comparison,
    read_test_predictions,
)
from tests.helpers import assert_says, permission_bits_stop_writes

LABELS = np.arange(100) % 10


def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the binomial formula: 2 P(X <= min(b, c)), X ~ B(b+c,
    1/2), capped at 1."""
    n = b + c
    return min(1.0, 2 * sum(comb(n, k) for k in range(min(b, c) + 1)) / 2**n)


def predictions_with_errors(wrong: list[int]) -> RevisionPredictions:
    predicted = LABELS.copy()
    predicted[wrong] = (LABELS[wrong] + 1) % 10
    return RevisionPredictions(LABELS, predicted)


def test_the_expected_p_value_by_hand() -> None:
    assert exact_mcnemar(1, 9) == 2 * (comb(10, 0) + comb(10, 1)) / 2**10 == 0.021484375


@pytest.mark.parametrize(
    ("old_wrong", "new_wrong", "fixed", "introduced", "both_wrong"),
    [
        (list(range(10, 20)), [10, 50], 9, 1, 1),  # b=1, c=9: p = 0.0215, better
        ([10, 50], list(range(10, 20)), 1, 9, 1),  # the reverse: worse
        ([1, 2, 3, 4, 5, 60, 61], [60, 61, 70, 71, 72], 5, 3, 2),  # p = 0.727: no difference
        ([1, 2], [3, 4], 2, 2, 0),  # b = c: p capped at 1
        ([], [], 0, 0, 0),  # identical predictions: p = 1
    ],
)
def test_counts_and_exact_p_values(
    old_wrong: list[int], new_wrong: list[int], fixed: int, introduced: int, both_wrong: int
) -> None:
    old, new = predictions_with_errors(old_wrong), predictions_with_errors(new_wrong)
    result = compare_predictions("old", old, "new", new)
    assert (result.fixed, result.introduced, result.both_wrong) == (fixed, introduced, both_wrong)
    assert result.both_right == 100 - fixed - introduced - both_wrong
    assert (result.old_errors, result.new_errors) == (len(old_wrong), len(new_wrong))
    assert result.p_value == pytest.approx(exact_mcnemar(introduced, fixed), rel=1e-12)


def test_verdicts() -> None:
    better = compare_predictions(
        "main", predictions_with_errors(list(range(10, 20))), "exp", predictions_with_errors([10])
    )
    assert better.p_value == pytest.approx(2 / 2**9)  # b=0, c=9
    assert better.verdict() == "`exp` is better than `main`, p = 0.00391"
    assert not better.new_is_worse
    worse = compare_predictions(
        "main",
        predictions_with_errors([10, 50]),
        "exp",
        predictions_with_errors(list(range(10, 20))),
    )
    assert worse.verdict() == "`exp` is worse than `main`, p = 0.0215"
    assert worse.new_is_worse
    same = compare_predictions("a", predictions_with_errors([1]), "b", predictions_with_errors([2]))
    assert same.verdict() == "no significant difference at the 5% level (p = 1)"
    assert not same.new_is_worse
    assert "## Paired test-set comparison (McNemar)" in same.markdown()
    assert "| fixed: wrong in `a`, right in `b` | 1 |" in same.markdown()


def test_different_test_sets_are_one_clear_error() -> None:
    old = predictions_with_errors([1])
    shorter = RevisionPredictions(LABELS[:50], LABELS[:50])
    with pytest.raises(DigitsError) as error:
        compare_predictions("old", old, "new", shorter)
    assert_says(str(error.value), "`old`", "`new`", "test sets", "100 vs 50", "same prepare params")
    relabelled = RevisionPredictions(np.roll(LABELS, 1), LABELS)
    with pytest.raises(DigitsError) as error:
        compare_predictions("old", old, "new", relabelled)
    assert_says(str(error.value), "`old`", "`new`", "labels", "100 positions")


def write_table(repo: Path, predictions: RevisionPredictions) -> None:
    rows = "".join(
        f"{a},{p}\n" for a, p in zip(predictions.labels, predictions.predicted, strict=True)
    )
    (repo / CONFUSION_TABLE).write_text("actual,predicted\n" + rows)


def run(repo: Path, *args: str) -> None:
    subprocess.run(args, cwd=repo, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository: commits `v1` (10 errors) and `v2` (2 errors: 9 fixed, 1 new), an
    experiment `worse` on top of v2 (20 errors), and a workspace with the v1 predictions."""
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    repo = tmp_path_factory.mktemp("repo")
    run(repo, "git", "init", "-q")
    run(repo, "git", "config", "user.email", "test@example.com")
    run(repo, "git", "config", "user.name", "test")
    run(repo, "dvc", "init", "-q")
    (repo / CONFUSION_TABLE).parent.mkdir(parents=True)
    write_table(repo, predictions_with_errors(list(range(10, 20))))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "v1")
    run(repo, "git", "tag", "v1")
    write_table(repo, predictions_with_errors([10, 50]))
    run(repo, "git", "commit", "-qam", "v2")
    run(repo, "git", "tag", "v2")
    write_table(repo, predictions_with_errors(list(range(20))))
    run(repo, "dvc", "exp", "save", "-q", "-n", "worse")
    write_table(repo, predictions_with_errors(list(range(10, 20))))
    return repo


@pytest.mark.e2e
def test_dvc_reads_commits_experiments_and_the_workspace(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    found = read_test_predictions("v1", "worse")
    assert list(found) == ["v1", "worse"]
    np.testing.assert_array_equal(found["v1"].labels, LABELS)
    np.testing.assert_array_equal(found["worse"].predicted, predictions_with_errors(
        list(range(20))).predicted)  # fmt: skip
    better = paired_comparison("v1", "v2")
    assert (better.fixed, better.introduced, better.p_value) == (9, 1, 0.021484375)
    workspace = paired_comparison("v2")  # the workspace holds v1's predictions again
    assert (workspace.new, workspace.fixed, workspace.introduced) == ("workspace", 1, 9)
    with pytest.raises(DigitsError) as error:
        paired_comparison("HEAD~5", "v2")
    assert_says(str(error.value), "HEAD~5")


@pytest.mark.e2e
def test_a_revision_without_predictions_is_one_clear_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(repo)
    empty_tree = subprocess.run(
        ["git", "commit-tree", "-m", "empty", "4b825dc642cb6eb9a060e54bf8d69288fbee4904"],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with pytest.raises(DigitsError, match=f"`{empty_tree}` has no {CONFUSION_TABLE}"):
        paired_comparison(empty_tree, "v2")


@pytest.mark.e2e
def test_the_review_reports_mcnemar_first_and_gates_ci(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    cli.main(["review", "v1", "v2", "--fail-if-worse", "-o", "review_better"])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "review: `v1` vs `v2` on 100 test images: 9 errors fixed, 1 introduced; "
        "`v2` is better than `v1`, p = 0.0215",
        "review: wrote review_better/README.md",
    ]
    report = (repo / "review_better" / "README.md").read_text()
    assert report.index("## Paired test-set comparison (McNemar)") < report.index("## Params")
    assert "**`v2` is better than `v1`, p = 0.0215**" in report

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["review", "v2", "worse", "--fail-if-worse", "-o", "review_worse"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ")
    assert_says(error, "`worse`", "worse than `v2`", "p = ", "--fail-if-worse")
    assert (repo / "review_worse" / "README.md").is_file()  # the report is written all the same
    cli.main(["review", "v2", "worse", "-o", "review_worse"])  # without the flag: exit 0


@pytest.mark.e2e
def test_a_review_under_a_file_names_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One line naming what is in the way; meaningful as root, whom chmod does not stop."""
    monkeypatch.chdir(repo)
    (repo / "notes.md").write_text("a file where a folder should be")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["review", "v1", "v2", "-o", "notes.md/review"])
    assert exit_info.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ")
    assert_says(line, "notes.md/review", f"{repo / 'notes.md'} is a file", "choose another -o")


@pytest.mark.e2e
@pytest.mark.skipif(
    not permission_bits_stop_writes(), reason="this user (root) writes to read-only folders"
)
def test_a_review_into_a_read_only_folder_names_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    locked = repo / "locked"
    locked.mkdir(mode=0o555)
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["review", "v1", "v2", "-o", "locked/review"])
    finally:
        locked.chmod(0o755)
    assert exit_info.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"cannot write to {locked} (permission denied)" in line
    assert f"chmod u+w {locked}" in line and "-o" in line


def commit_beside(repo: Path, parent: str, files: dict[str, bytes]) -> str:
    """A commit on `parent` with `files` added, made without touching the workspace or a branch."""
    index = repo / ".git" / "test-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}

    def git(*args: str, stdin: bytes | None = None) -> str:
        done = subprocess.run(
            ["git", *args], cwd=repo, env=env, input=stdin, capture_output=True, check=True
        )
        return done.stdout.decode().strip()

    git("read-tree", parent)
    for name, data in files.items():
        blob = git("hash-object", "-w", "--stdin", stdin=data)
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}")
    tree = git("write-tree")
    index.unlink()
    return git("commit-tree", tree, "-p", parent, "-m", "params.yaml saved as Latin-1")


@pytest.mark.e2e
def test_params_that_are_not_utf8_are_named_not_taken_for_missing_predictions(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    latin_1 = "# réglages\nseed: 1\n".encode("latin-1")
    params = repo / "params.yaml"
    params.write_bytes(latin_1)
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["review", "v2", "-o", "review_latin_1"])
    finally:
        params.unlink()
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ")
    assert_says(error, "params.yaml", "UTF-8", "0xe9", "line 1", "save params.yaml as UTF-8")
    assert not (repo / "review_latin_1").exists()

    # A commit whose params.yaml DVC cannot read: DVC's own reason, not "has no".
    stage = b"stages:\n  s:\n    cmd: echo\n    params: [seed]\n"
    commit = commit_beside(repo, "v2", {"params.yaml": latin_1, "dvc.yaml": stage})
    with pytest.raises(DigitsError) as raised:
        read_test_predictions(commit, "v2")
    assert str(raised.value).startswith(f"DVC cannot read `{commit}`: ")
    assert "'params.yaml', is not valid utf-8" in str(raised.value)
