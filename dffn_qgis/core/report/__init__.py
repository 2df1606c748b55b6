"""What a user reads: the endmember plot."""
