"""The shareable report: one self-contained HTML file (inline SVG, no script, no network) of an
experiment or of chosen runs, with the same sections and numbers as the dashboard's Compare page."""
