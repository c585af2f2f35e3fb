"""The jobs monitor: the table model, its delegates and formatting, and the jobs panel."""
