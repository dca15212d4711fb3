"""What a run hands to people: Markdown and JSON reports, plots, the claims table and merged tables."""
