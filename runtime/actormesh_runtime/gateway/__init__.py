"""The HTTP/WebSocket gateway (`actormesh gateway`): how customers and the chat widget reach the mesh.

`app.create_app(settings)` builds the FastAPI application; `server.serve_gateway` runs it under
uvicorn inside an existing event loop (used by `actormesh gateway`, `actormesh dev` and the tests).
docs/gateway.md describes the API.
"""
