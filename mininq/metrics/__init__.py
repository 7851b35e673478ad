"""Pure metrics arithmetic shared by the store, the API and the dashboard."""
