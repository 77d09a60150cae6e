"""`lact-audio tune`: Ray Tune studies whose trials are ordinary training runs."""
