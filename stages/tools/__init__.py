"""Commands that are not DVC stages: browse, translate, profile, bench."""
