"""The `affectbench` command (placeholder until the CLI lands in this branch)."""


def main() -> None:  # pragma: no cover - replaced by the real CLI
    raise SystemExit("affectbench: CLI not built yet")
