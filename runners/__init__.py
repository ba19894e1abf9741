"""The loops that run tasks for encoders: extract -> fit -> evaluate -> log."""
