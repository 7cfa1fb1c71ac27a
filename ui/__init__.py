"""The dashboard's helpers: session-state keys (state) and figures (charts); pages/ holds only pages."""
