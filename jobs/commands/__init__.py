"""One thin module per `lact-audio` command: HELP, add_arguments(parser) and run(args), which
calls into an engine (jobs/training, evaluation, tuning, nightly, inference, cluster, demo).
Heavy imports (torch, ray) wait inside run() so that `lact-audio --help` stays instant."""
