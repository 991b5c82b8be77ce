"""The web app: provider hooks, the JSON API and the pages; built by app.web.factory.create_app."""
