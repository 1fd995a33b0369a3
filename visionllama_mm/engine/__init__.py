"""Training glue shared by the three toolboxes."""
