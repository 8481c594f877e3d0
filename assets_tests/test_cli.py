"""`mma`: one command whose sub-commands are the product's command lines."""

import pytest

from multimodal_assets import cli


def test_mma_lists_its_commands_and_refuses_an_unknown_one(capsys):
    assert cli.main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {name}" in listing for name in cli.COMMANDS)
    assert cli.main(["frobnicate"]) == 2


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_each_sub_command_parses_its_own_options(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: mma {command}")
