"""Shell completion: `tritonfil completion bash|zsh` prints argcomplete's script, and bash, given that script,
completes subcommands, options and stage names by running this venv's `tritonfil`."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import pytest

from tests.conftest import VENV_BIN
from tritonfil import cli, completion


def test_scripts_register_the_tritonfil_command(capsys):
    assert cli.main(["completion", "bash"]) == 0
    bash = capsys.readouterr().out
    assert bash == completion.script("bash")
    assert "complete -o nospace -o default -o bashdefault -F _python_argcomplete tritonfil" in bash
    assert cli.main(["completion", "zsh"]) == 0
    zsh = capsys.readouterr().out  # argcomplete's one script for both shells, headed for zsh's fpath
    assert zsh.startswith("#compdef tritonfil\n") and "compdef _python_argcomplete tritonfil" in zsh


def test_unknown_shell_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["completion", "tcsh"])
    assert info.value.code == 2
    assert "invalid choice: 'tcsh' (choose from 'bash', 'zsh')" in capsys.readouterr().err


def test_tags_complete_after_the_last_comma():
    complete = completion.tags_completer(("ecr_image", "s3_models", "eks_gpu_cluster"))
    assert complete("") == ["ecr_image", "s3_models", "eks_gpu_cluster"]
    assert complete("e") == ["ecr_image", "eks_gpu_cluster"]
    assert complete("ecr_image,") == ["ecr_image,s3_models", "ecr_image,eks_gpu_cluster"]
    assert complete("ecr_image,ek") == ["ecr_image,eks_gpu_cluster"]


BASH_COMPLETE = r"""
source <(tritonfil completion bash)
line="$1"
COMP_LINE="$line"; COMP_POINT=${#line}
read -ra COMP_WORDS <<< "$line"
[[ "$line" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_python_argcomplete tritonfil "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(line: str, cwd: str) -> list[str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", BASH_COMPLETE, "complete", line], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [w.strip() for w in proc.stdout.splitlines() if w.strip()]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("tritonfil d", ["deploy", "doctor"]),
        ("tritonfil completion ", ["-h", "--help", "bash", "zsh"]),
        ("tritonfil deploy --ti", ["--timeout"]),
        ("tritonfil deploy --tags ecr_image,s3", ["ecr_image,s3_models"]),
        ("tritonfil teardown --tags tr", ["triton_release"]),
        ("tritonfil verify --tags ", ["verify"]),
        ("tritonfil doctor -i a", ["aws", "a.yml"]),
    ],
)
def test_bash_completes_from_the_parser(line, words, tmp_path):
    (tmp_path / "a.yml").write_text("")
    assert bash_complete(line, str(tmp_path)) == words, shlex.quote(line)
