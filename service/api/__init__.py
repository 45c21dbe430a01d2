"""HTTP and WebSocket routes of API v1. Routes parse and authenticate; ``service.serving`` acts."""
