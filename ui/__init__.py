"""The dashboard's helpers: session-state keys (state), figures (charts), the flow and its stepper (flow) and
the start page's diagram (diagram); pages/ holds only pages."""
