"""One module per `perfmodel` subcommand. Each defines `HELP`, `EXAMPLES`, `add_arguments(parser)` and
`run(args) -> int`, and imports heavy packages (torch, triton, streamlit) inside `run`, so that `--help` is fast."""
