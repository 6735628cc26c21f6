"""The `pgstash` command: every subcommand, its printing, the demo and its corpus."""
