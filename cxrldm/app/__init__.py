"""The browser front end: generate and edit interactively, and a blinded reader study (docs/app.md)."""
