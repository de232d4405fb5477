"""One APIRouter per area of the API; `interlock.server.app.create_app` includes them in this order."""
