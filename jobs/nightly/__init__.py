"""`lact-audio nightly`: preprocess new data, train a challenger, compare it with the champion on a
fixed test split, move the `champion` alias only when the challenger wins by the margin."""
