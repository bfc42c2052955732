"""`quitbot eval`: labelled conversations replayed through the real engine and model, and
a report of how the configured model, prompt and thresholds judged them."""
