"""The data contract: pandera models of every table the pipeline reads or writes."""
