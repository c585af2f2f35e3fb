"""The job details pane: overview, loss chart, logs and samples of the selected job(s)."""
