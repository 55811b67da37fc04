"""The two command-line apps, run as a user would."""

from __future__ import annotations

from pathlib import Path

from tests.support import CoordinatorProcess, CuttingProxy, run_cli


def test_tokens_create_prints_the_token_last_and_list_shows_it(
    coordinator: CoordinatorProcess,
) -> None:
    out = run_cli(
        "coordinator", "tokens", "create", "cli-dora", "--role", "admin", *coordinator.cli_args()
    )
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("moerge_") and " " not in token
    listing = run_cli("coordinator", "tokens", "list", *coordinator.cli_args()).stdout
    assert "cli-dora" in listing and "admin" in listing and token not in listing
    again = run_cli(
        "coordinator", "tokens", "create", "cli-dora", *coordinator.cli_args(), check=False
    )
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        == "moerge-coordinator: error: contributor 'cli-dora' already exists; use `tokens rotate`"
    )


def test_contributor_upload_status_download_from_the_environment(
    coordinator: CoordinatorProcess, make_expert, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = make_expert("cli-expert")
    env = {"MOERGE_COORDINATOR": coordinator.address, "MOERGE_TOKEN": coordinator.token("cli-erin")}
    up = run_cli("contributor", "upload", str(root), "--no-progress", env=env)
    assert up.stdout.startswith("uploaded cli-expert:1 (") and "status active" in up.stdout
    again = run_cli("contributor", "upload", str(root), env=env)
    assert "already in the pool" in again.stdout
    status = run_cli("contributor", "status", env=env).stdout
    assert "contributor cli-erin" in status and "cli-expert:1" in status and "1 expert(s)" in status
    down = run_cli(
        "contributor", "download", "cli-expert:1", "--out", str(tmp_path), env=env
    ).stdout
    assert (
        "sha256 verified" in down
        and (tmp_path / "cli-expert-1" / "adapter_model.safetensors").is_file()
    )
    retire = run_cli("contributor", "retire", "cli-expert:1", env=env).stdout
    assert retire.strip() == "cli-expert:1 is now retired"


def test_contributor_reads_a_config_file_and_resumes_on_its_own(
    coordinator: CoordinatorProcess, make_expert, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = make_expert("cli-resumed", rank=1024, targets=("query", "key", "value", "dense"))
    proxy = CuttingProxy(coordinator.port, cut_after=2 * 1024 * 1024)
    config = tmp_path / "contributor.toml"
    config.write_text(
        f'coordinator = "{proxy.address}"\ntoken = "{coordinator.token("cli-finn")}"\n'
    )
    up = run_cli("contributor", "upload", str(root), "--config", str(config))
    proxy.close()
    assert proxy.cuts == 1
    assert "uploaded cli-resumed:1" in up.stdout and "after 1 resume(s)" in up.stdout
    assert "upload" in up.stderr  # the progress bar


def test_contributor_errors_are_one_line_with_a_nonzero_exit(
    coordinator: CoordinatorProcess, make_expert, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = make_expert("cli-errors")
    cases = [
        (
            ["whoami", "--coordinator", coordinator.address, "--token", "moerge_bogus"],
            "moerge-contributor: error: unauthenticated: invalid token",
        ),
        (
            [
                "upload",
                str(tmp_path / "missing"),
                "--coordinator",
                coordinator.address,
                "--token",
                "t",
            ],
            f"moerge-contributor: error: {tmp_path / 'missing'}: not a directory",
        ),
        (
            ["status", "--config", str(tmp_path / "none.toml")],
            f"moerge-contributor: error: config file {tmp_path / 'none.toml'} does not exist",
        ),
        (
            [
                "download",
                "nonexistent",
                "--coordinator",
                coordinator.address,
                "--token",
                coordinator.token("cli-gail"),
            ],
            "moerge-contributor: error: not_found: no expert named 'nonexistent'",
        ),
    ]
    env = {"MOERGE_COORDINATOR": "", "MOERGE_TOKEN": "", "HOME": str(tmp_path)}
    for args, message in cases:
        result = run_cli("contributor", *args, env=env, check=False)
        assert result.returncode == 1, result
        assert result.stderr.strip() == message
    no_coordinator = run_cli("contributor", "upload", str(root), env=env, check=False)
    assert (
        no_coordinator.returncode == 1
        and "no coordinator: pass --coordinator" in no_coordinator.stderr
    )


def test_coordinator_errors_are_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "coordinator",
        "tokens",
        "list",
        "--database-url",
        "postgresql://nobody@127.0.0.1:1/none",
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "moerge-coordinator: error: registry database: connection failed"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    missing = run_cli(
        "coordinator",
        "base-models",
        "register",
        str(tmp_path),
        "--data-dir",
        str(tmp_path / "data"),
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"moerge-coordinator: error: {tmp_path}: no config.json; "
        "is this a Hugging Face model directory?"
    )
