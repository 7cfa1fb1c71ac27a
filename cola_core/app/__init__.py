"""The dashboard's services (prepared spaces, background jobs, compare frames); never imports streamlit."""
